// Depthwise convs (one channel in and out per group), memory-bound. Three kernels:
//
// depthwise_window_kernel, for a 3x3 window of stride 1 and dilation 1 on the last two axes (one
// tap on the first): a thread owns VEC consecutive channels of one output column and R
// consecutive output rows. It keeps its 9 taps' weights in registers and walks the R + 2 input
// rows it needs once each, reading every row's 3 columns (one load per column), adding each row
// into the up-to-3 output rows it feeds and storing an output row as soon as it is complete; it
// loads two rows ahead of the row it adds. So an input row is read by ~(R + 2) / R row groups
// instead of 3 output rows, and the 3 columns are shared with the neighbouring threads
// through L1. Consecutive threads own consecutive channel vectors of a tile of CB vectors
// (CB·VEC·sizeof(T) <= 128 bytes), then consecutive columns, so a warp reads whole sectors.
//
// depthwise_kernel, any other shape: a thread owns VEC consecutive channels (one 16-byte
// vector) of kDepthwiseOutputsPerThread consecutive output positions along the last axis,
// consecutive threads owning consecutive channel vectors so that a warp reads and writes
// contiguous runs. For each kernel row it loads the row's weights once and, for a stride-1
// undilated last axis of 3 taps, the V + 2 inputs that its V outputs share once (a register
// window); other shapes read each (output, tap) input, which the L1 cache serves.
//
// depthwise_ring_kernel, the 3x3 window problems of depthwise_window_kernel with 16-byte channel
// vectors: a block streams whole input rows of a channel chunk and column tile into a ring of
// shared-memory slots with cp.async, several rows ahead, and its threads add them from there
// (see the comment above the kernel).
//
// All read the weights transposed to [tap, C] by launch_depthwise_weights, skip kernel rows
// that fall in the padding, add padded columns as zeros, accumulate f16 and bf16 in f32, f64 in
// f64, and sum each output's taps in the same order (axis 0, then 1, then 2), so they give the
// same bits.
#include <algorithm>
#include <type_traits>

#include "elem.cuh"

namespace convnd::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int V = kDepthwiseOutputsPerThread;

template <class T, int N>
struct alignas(16) Pack {
  T v[N];
};

// N elements of T as one load or store: 16, 8, 4 or 2 bytes.
template <int BYTES>
struct RawOf;
template <>
struct RawOf<16> {
  using type = uint4;
};
template <>
struct RawOf<8> {
  using type = uint2;
};
template <>
struct RawOf<4> {
  using type = uint32_t;
};
template <>
struct RawOf<2> {
  using type = uint16_t;
};
template <class T, int N>
struct alignas(N * sizeof(T)) Vec {
  T v[N];
};

// VEC elements of T at p, converted to the compute type (one 16-byte load when VEC > 1).
template <class T, int VEC>
__device__ __forceinline__ void load_vec(const T* p, compute_t<T> (&out)[VEC]) {
  if constexpr (VEC == 1) {
    out[0] = load(p);
  } else {
    static_assert(VEC * sizeof(T) == 16, "16-byte vectors");
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const Pack<T, VEC> pk = *reinterpret_cast<const Pack<T, VEC>*>(&u);
#pragma unroll
    for (int e = 0; e < VEC; ++e) out[e] = to_compute(pk.v[e]);
  }
}

template <class T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const compute_t<T> (&in)[VEC]) {
  if constexpr (VEC == 1) {
    p[0] = from_compute<T>(in[0]);
  } else {
    Pack<T, VEC> pk;
#pragma unroll
    for (int e = 0; e < VEC; ++e) pk.v[e] = from_compute<T>(in[e]);
    *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(&pk);
  }
}

struct Decompose {
  FastDivmod chunks, wblocks, p1, p0;  // channel vectors, output blocks along the last axis, P1, P0
  int64_t total;                       // threads of this launch (< 2^31)
};

// KW = 3: last axis stride 1, dilation 1, 3 taps (the register window); KW = 0: any.
template <class T, int VEC, int KW>
__global__ void __launch_bounds__(kBlock) depthwise_kernel(const DepthwiseParams p, const Decompose dec) {
  using C = compute_t<T>;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ wt = static_cast<const T*>(p.wt);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int64_t e = int64_t(blockIdx.x) * kBlock + threadIdx.x;
  if (e >= dec.total) return;
  uint32_t cc, wb, p1, p0;
  uint32_t r = dec.chunks.divmod(uint32_t(e), &cc);
  r = dec.wblocks.divmod(r, &wb);
  r = dec.p1.divmod(r, &p1);
  const int64_t n = dec.p0.divmod(r, &p0);
  const int64_t c0 = int64_t(cc) * VEC;
  const int32_t q0 = int32_t(wb) * V;  // first output position along the last axis

  C acc[V][VEC];
#pragma unroll
  for (int v = 0; v < V; ++v)
#pragma unroll
    for (int j = 0; j < VEC; ++j) acc[v][j] = C(0);

  for (int32_t k0 = 0; k0 < p.k[0]; ++k0) {
    const int32_t i0 = int32_t(p0) * p.stride[0] - p.lo[0] + k0 * p.dil[0];
    if (unsigned(i0) >= unsigned(p.in[0])) continue;
    for (int32_t k1 = 0; k1 < p.k[1]; ++k1) {
      const int32_t i1 = int32_t(p1) * p.stride[1] - p.lo[1] + k1 * p.dil[1];
      if (unsigned(i1) >= unsigned(p.in[1])) continue;
      const T* xr = x + ((n * p.in[0] + i0) * p.in[1] + i1) * int64_t(p.in[2]) * p.c + c0;
      const T* wr = wt + (int64_t(k0) * p.k[1] + k1) * p.k[2] * p.c + c0;
      if constexpr (KW == 3) {
        C wv[3][VEC];
#pragma unroll
        for (int t = 0; t < 3; ++t) load_vec<T, VEC>(wr + t * p.c, wv[t]);
        const int32_t base = q0 - p.lo[2];
#pragma unroll
        for (int j = 0; j < V + 2; ++j) {
          C xv[VEC];
          if (unsigned(base + j) < unsigned(p.in[2])) {
            load_vec<T, VEC>(xr + int64_t(base + j) * p.c, xv);
          } else {
#pragma unroll
            for (int u = 0; u < VEC; ++u) xv[u] = C(0);
          }
          // Input j feeds output v through tap j - v.
#pragma unroll
          for (int v = 0; v < V; ++v) {
            const int t = j - v;
            if (t >= 0 && t < 3) {
#pragma unroll
              for (int u = 0; u < VEC; ++u) acc[v][u] += xv[u] * wv[t][u];
            }
          }
        }
      } else {
        for (int32_t k2 = 0; k2 < p.k[2]; ++k2) {
          C wv[VEC];
          load_vec<T, VEC>(wr + int64_t(k2) * p.c, wv);
#pragma unroll
          for (int v = 0; v < V; ++v) {
            const int32_t i2 = (q0 + v) * p.stride[2] - p.lo[2] + k2 * p.dil[2];
            if (q0 + v < p.out[2] && unsigned(i2) < unsigned(p.in[2])) {
              C xv[VEC];
              load_vec<T, VEC>(xr + int64_t(i2) * p.c, xv);
#pragma unroll
              for (int u = 0; u < VEC; ++u) acc[v][u] += xv[u] * wv[u];
            }
          }
        }
      }
    }
  }
  T* yr = y + ((n * p.out[0] + p0) * p.out[1] + p1) * int64_t(p.out[2]) * p.c + c0;
#pragma unroll
  for (int v = 0; v < V; ++v)
    if (q0 + v < p.out[2]) store_vec<T, VEC>(yr + int64_t(q0 + v) * p.c, acc[v]);
}

struct WindowDecompose {
  FastDivmod cols;     // output columns P2
  FastDivmod jblocks;  // blocks per (row group, P0 position, sample)
  FastDivmod rgroups;  // row groups along axis 1: ceil(P1 / R)
  FastDivmod p0;       // P0
  uint32_t cb_log2;    // channel vectors per tile: 1 << cb_log2 (a divisor of C / VEC)
  uint32_t j_total;    // threads per (row group, P0 position, sample): C / VEC · P2 (< 2^31)
};

// The 3x3 window (DepthwiseKernel::window): axis 0 one tap (any stride and padding), axes 1 and
// 2 three taps, stride 1, dilation 1. Block b = ((n·P0 + p0)·groups + rg)·jblocks + jb;
// thread j = jb·kBlock + tid = (tile·P2 + q)·CB + lane: channel vector tile·CB + lane, output
// column q, rows rg·R .. rg·R + R − 1.
template <class T, int VEC, int R>
__global__ void __launch_bounds__(kBlock)
    depthwise_window_kernel(const DepthwiseParams p, const WindowDecompose d) {
  using C = compute_t<T>;
  using V = Vec<T, VEC>;
  using Raw = typename RawOf<sizeof(V)>::type;
  constexpr int kAhead = 2;  // input rows loaded ahead of the row being added
  const T* __restrict__ x = static_cast<const T*>(p.x);
  T* __restrict__ y = static_cast<T*>(p.y);
  uint32_t jb, rg, p0;
  uint32_t r = d.jblocks.divmod(blockIdx.x, &jb);
  r = d.rgroups.divmod(r, &rg);
  const int64_t n = d.p0.divmod(r, &p0);
  const uint32_t j = jb * kBlock + threadIdx.x;
  if (j >= d.j_total) return;
  uint32_t q;
  const uint32_t tile = d.cols.divmod(j >> d.cb_log2, &q);
  const int64_t c0 = int64_t((tile << d.cb_log2) + (j & ((1u << d.cb_log2) - 1))) * VEC;
  const int32_t o1 = int32_t(rg) * R;       // first output row
  const int32_t i1 = o1 - p.lo[1];          // first input row (may be negative)
  const int32_t i2 = int32_t(q) - p.lo[2];  // first input column
  const int32_t i0 = int32_t(p0) * p.stride[0] - p.lo[0];
  const bool plane = unsigned(i0) < unsigned(p.in[0]);
  bool col_ok[3];
#pragma unroll
  for (int kw = 0; kw < 3; ++kw) col_ok[kw] = unsigned(i2 + kw) < unsigned(p.in[2]);
  const int64_t x_row = int64_t(p.in[2]) * p.c;
  // [N, I0, I1, I2, C] at (n, i0, i1, i2, c0); rows i1 .. i1 + R + 1 follow at x_row.
  const T* xp = x + ((n * p.in[0] + i0) * p.in[1] + i1) * x_row + int64_t(i2) * p.c + c0;
  Raw w[9];  // [kh·3 + kw], taps of axis 0 index 0
  const T* wp = static_cast<const T*>(p.wt) + c0;
#pragma unroll
  for (int t = 0; t < 9; ++t) w[t] = __ldg(reinterpret_cast<const Raw*>(wp + t * p.c));
  Raw buf[R + 2][3];  // input rows, loaded kAhead rows before they are added
  auto load_row = [&](int ii) {
    const bool row_ok = plane && unsigned(i1 + ii) < unsigned(p.in[1]);
#pragma unroll
    for (int kw = 0; kw < 3; ++kw) {
      buf[ii][kw] = Raw{};
      if (row_ok && col_ok[kw]) buf[ii][kw] = __ldg(reinterpret_cast<const Raw*>(xp + ii * x_row + kw * p.c));
    }
  };
#pragma unroll
  for (int ii = 0; ii < kAhead; ++ii) load_row(ii);
  C acc[R][VEC];
#pragma unroll
  for (int v = 0; v < R; ++v)
#pragma unroll
    for (int u = 0; u < VEC; ++u) acc[v][u] = C(0);
  const int64_t y_row = int64_t(p.out[2]) * p.c;
  T* yp = y + ((n * p.out[0] + p0) * p.out[1] + o1) * y_row + int64_t(q) * p.c + c0;
#pragma unroll
  for (int ii = 0; ii < R + 2; ++ii) {
    if (ii + kAhead < R + 2) load_row(ii + kAhead);
    if (plane && unsigned(i1 + ii) < unsigned(p.in[1])) {
      // Input row ii feeds output row ii − kh through kernel row kh; kernel rows of one output
      // arrive in order, so each output sums its taps in order.
#pragma unroll
      for (int kh = 2; kh >= 0; --kh) {
        const int v = ii - kh;
        if (v < 0 || v >= R) continue;
#pragma unroll
        for (int kw = 0; kw < 3; ++kw) {
          const V xv = *reinterpret_cast<const V*>(&buf[ii][kw]);
          const V wv = *reinterpret_cast<const V*>(&w[kh * 3 + kw]);
#pragma unroll
          for (int u = 0; u < VEC; ++u) acc[v][u] += to_compute(xv.v[u]) * to_compute(wv.v[u]);
        }
      }
    }
    // Output row ii − 2 has all its kernel rows now.
    if (ii >= 2 && o1 + ii - 2 < p.out[1]) {
      V out;
#pragma unroll
      for (int u = 0; u < VEC; ++u) out.v[u] = from_compute<T>(acc[ii - 2][u]);
      *reinterpret_cast<Raw*>(yp + (ii - 2) * y_row) = *reinterpret_cast<const Raw*>(&out);
    }
  }
}

// ---- DepthwiseKernel::ring: a shared-memory row ring ------------------------------------------
//
// Why: the window kernel issues 3 global loads per input vector and row (one per column tap; L1
// serves the repeats), read the 2 halo rows of every row group again, and keep only 2-3 rows of
// 8-16 bytes per thread in flight: ~12 KB per SM, which at its 0.94 TB/s of reads
// means ~1.7 us of latency, and reading at the ~1.5 TB/s that copy bandwidth allows needs
// more bytes in flight than that. Here a block copies
// whole input rows of its tile into a ring of shared-memory slots with cp.async, AHEAD rows
// ahead of the row it adds (~23 KB per block in flight for the suite problem), so that each
// input byte leaves global memory once per block, in 16-byte coalesced copies that skip L1
// (cp.async.cg), and the 3 column taps are read from shared memory instead.
//
// Block = (column tile, row strip, channel chunk, P0 position, sample), tile fastest, so that
// the blocks sharing halo columns and halo rows run at about the same time and meet in L2.
//   - channel chunk: CV = 8 16-byte vectors of channels (128 bytes per pixel, a full cache
//     line; 64-byte chunks, which fit a 56-column row in one tile, were measured no faster and
//     removed); the last chunk may hold fewer (C need only be a multiple
//     of the vector, 16 / sizeof(T) channels);
//   - column tile: up to 256 / CV output columns, the tiles of a row balanced (56 columns:
//     2 tiles of 28, 224 threads);
//   - row strip: up to kRingRowsPerR·rows output rows (rows = launch_depthwise's 4, 8 or 16:
//     strips of up to 16, 32 or 64 rows), balanced (56 rows: 14, 28 or 56).
// Thread tid = q·CV + v computes channel vector v of output column q0 + q for every row of the
// strip; blockDim = ceil32(tile columns · CV). It keeps its 9 taps' weights converted to the
// compute type in registers and, like the window kernel, walks the strip's input rows once each,
// adding row ii into the 3 output rows it feeds (partial sums in 3 rotating register slots:
// output o lives in slot o % 3, the walk unrolled by 3 so every slot index is a constant) and
// storing an output row (16 bytes per thread) as soon as its 3 kernel rows are in.
//
// Ring: SLOTS = AHEAD + 1 slots of (tile columns + 2) pixels × CV vectors. Step ii: wait until this
// thread's copies of row ii are done (cp.async.wait_group AHEAD − 1: groups are committed one
// per row, empty ones included, so AHEAD + ii groups precede the wait and the oldest ii + 1 are
// done), __syncthreads (every thread's copies of row ii are visible, and every thread has
// finished reading row ii − 1), then copy row ii + AHEAD into the slot of row ii − 1 (the one
// the barrier freed), then add row ii from its slot. Columns outside the input (padding) never
// get a copy: their vectors are zeroed once in every slot with ordinary stores before the first
// barrier, so they read as zeros like the window kernel's padded columns (which it adds as 0·w); rows
// outside the input (padding) are neither copied nor added, like the window kernel's. Each output sums
// its taps in the window kernel's order (kernel row 0, 1, 2, each column 0, 1, 2, from 0), in f32 for
// f16 / bf16 / f32 and f64 for f64, with the same expression (acc += x · w, contracted to an
// FMA in both), so both give the same bits.
//
// Global traffic per block: (strip rows + 2) input rows of (tile columns + 2) pixels and one
// output row per strip row, CV·16 bytes per pixel; the halo rows and columns are read again by
// the neighbouring blocks, from L2 when those run alongside. For the suite problem (56x56,
// C 384 bf16) with 28-row strips that is 30/28 · 30/28 = 1.15x the input through L2 (1.11x
// with whole-height strips), the output once, and from DRAM ideally each byte once.
constexpr int kRingMaxThreads = 256;  // column tile · CV <= 256
constexpr int kRingRowsPerR = 4;      // strip of up to kRingRowsPerR · rows output rows

struct RingDecompose {
  FastDivmod tiles;    // column tiles per row strip
  FastDivmod strips;   // row strips per (chunk, P0 position, sample)
  FastDivmod chunks;   // channel chunks: ceil(C / (CV·VEC))
  FastDivmod p0;       // P0
  int32_t tile_cols;   // output columns of a tile (the last may have fewer)
  int32_t strip_rows;  // output rows of a strip (the last may have fewer)
};

// 128-byte channel chunks (a full cache line per pixel), 6 rows ahead: the f16 / bf16 kernels
// need ~125 registers (72 of them the weights in f32, converted once rather
// than per tap), so 2 blocks of 224 threads share an SM; 6 rows of 3.7-3.8 KB each keep ~45 KB
// per SM in flight for the suite problem.
template <int CV, int AHEAD>
struct RingShape {
  static constexpr int cv = CV, ahead = AHEAD;
};
using RingShape8 = RingShape<8, 6>;

__device__ __forceinline__ uint32_t ring_smem_addr(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ring_copy16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void ring_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void ring_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// VEC outputs rounded to T element by element (from_compute, as store_vec does) and packed into
// four 32-bit words, then stored with one 16-byte store (an explicit v4 store: storing a
// Vec<T, VEC> through a uint4 pointer here let the compiler split it into 2- and 4-byte stores).
__device__ __forceinline__ uint32_t ring_bits(__half h) {
  return __half_as_ushort(h);
}
__device__ __forceinline__ uint32_t ring_bits(__nv_bfloat16 h) {
  return __bfloat16_as_ushort(h);
}
template <class T, int VEC>
__device__ __forceinline__ uint4 ring_pack(const compute_t<T> (&a)[VEC]) {
  static_assert(VEC * sizeof(T) == 16, "16-byte vectors");
  uint32_t wd[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (sizeof(T) == 2) {
      wd[i] = ring_bits(from_compute<T>(a[2 * i])) | ring_bits(from_compute<T>(a[2 * i + 1])) << 16;
    } else if constexpr (sizeof(T) == 4) {
      wd[i] = __float_as_uint(a[i]);
    } else {
      wd[i] = uint32_t(i % 2 == 0 ? __double2loint(a[i / 2]) : __double2hiint(a[i / 2]));
    }
  }
  return make_uint4(wd[0], wd[1], wd[2], wd[3]);
}
__device__ __forceinline__ void ring_store16(void* p, const uint4 v) {
  asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
               : "memory");
}

template <class T, class S>
__global__ void __launch_bounds__(kRingMaxThreads, 2)
    depthwise_ring_kernel(const DepthwiseParams p, const RingDecompose d) {
  using C = compute_t<T>;
  constexpr int VEC = 16 / int(sizeof(T));  // channels per 16-byte vector
  constexpr int CV = S::cv;                 // vectors per pixel of a chunk
  constexpr int AHEAD = S::ahead;           // rows copied ahead of the row being added
  constexpr int SLOTS = AHEAD + 1;
  constexpr int kCvLog2 = CV == 8 ? 3 : CV == 4 ? 2 : CV == 2 ? 1 : 0;
  static_assert((1 << kCvLog2) == CV && CV <= 8, "CV a power of two, at most 8");
  static_assert(AHEAD >= 1, "at least one row ahead");
  using V = Vec<T, VEC>;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  T* __restrict__ y = static_cast<T*>(p.y);
  extern __shared__ __align__(16) unsigned char window_smem[];
  uint4* ring = reinterpret_cast<uint4*>(window_smem);  // [SLOTS][tile_cols + 2][CV]

  uint32_t tile, strip, chunk, p0;
  uint32_t r = d.tiles.divmod(blockIdx.x, &tile);
  r = d.strips.divmod(r, &strip);
  r = d.chunks.divmod(r, &chunk);
  const int64_t n = d.p0.divmod(r, &p0);
  const int32_t q0 = int32_t(tile) * d.tile_cols;   // first output column
  const int32_t cols = min(d.tile_cols, p.out[2] - q0);
  const int32_t o1 = int32_t(strip) * d.strip_rows;  // first output row
  const int32_t rows = min(d.strip_rows, p.out[1] - o1);
  const int64_t c0 = int64_t(chunk) * (CV * VEC);    // first channel
  const int32_t nv = int32_t(min(int64_t(CV), (p.c - c0) / VEC));  // vectors of this chunk in C
  const int32_t i0 = int32_t(p0) * p.stride[0] - p.lo[0];
  const bool plane = unsigned(i0) < unsigned(p.in[0]);
  const int32_t i1 = o1 - p.lo[1];  // input row of strip row 0 (may be negative)
  const int32_t i2 = q0 - p.lo[2];  // input column of ring column 0 (may be negative)
  const int32_t slot_vecs = (d.tile_cols + 2) * CV;
  const int64_t x_row = int64_t(p.in[2]) * p.c;
  // Element offset of input row i1 (column 0, channel 0) of plane (n, i0); rows follow at x_row.
  // Only used for rows inside the input.
  const int64_t x_base = ((n * p.in[0] + i0) * p.in[1] + i1) * x_row;
  const int tid = int(threadIdx.x);
  const int nthreads = int(blockDim.x);

  // This thread's copies of every row: vectors e = tid and tid + blockDim of the slot, ring
  // column e / CV, vector e % CV. (cols + 2)·CV <= 2·blockDim: blockDim >= cols·CV rounded up
  // to 32, and cols >= 2 or 3·CV <= 32.
  const int copies = (cols + 2) * CV;
  const uint32_t ring_base = ring_smem_addr(ring);
  bool copy_ok[2];
  int64_t copy_src[2];  // element offset within an input row
  uint32_t copy_dst[2];  // byte offset within a slot
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const int e = tid + k * nthreads;
    const int col = e >> kCvLog2, vv = e & (CV - 1);
    const bool in_tile = e < copies && vv < nv;
    const bool col_in = unsigned(i2 + col) < unsigned(p.in[2]);
    copy_ok[k] = in_tile && col_in;
    copy_src[k] = int64_t(i2 + col) * p.c + c0 + int64_t(vv) * VEC;
    copy_dst[k] = uint32_t(e) * 16u;
    if (in_tile && !col_in) {  // a padding column: zeros in every slot, never copied over
#pragma unroll
      for (int s = 0; s < SLOTS; ++s) ring[s * slot_vecs + e] = make_uint4(0, 0, 0, 0);
    }
  }
  const int steps = rows + 2;  // input rows i1 .. i1 + rows + 1
  const uint32_t slot_bytes = uint32_t(slot_vecs) * 16u;
  // Copies input row ii of the strip into slot `slot` when it is inside the input; commits a
  // group either way, so that group g always holds row g.
  auto issue = [&](int ii, int slot) {
    if (ii < steps && plane && unsigned(i1 + ii) < unsigned(p.in[1])) {
      const T* src = x + (x_base + int64_t(ii) * x_row);
      const uint32_t dst = ring_base + uint32_t(slot) * slot_bytes;
#pragma unroll
      for (int k = 0; k < 2; ++k)
        if (copy_ok[k]) ring_copy16(dst + copy_dst[k], src + copy_src[k]);
    }
    ring_commit();
  };
#pragma unroll
  for (int s = 0; s < AHEAD; ++s) issue(s, s);

  // This thread's output column and channel vector.
  const int q = tid >> kCvLog2, v = tid & (CV - 1);
  const bool active = q < cols && v < nv;
  const int64_t cv0 = c0 + int64_t(v) * VEC;  // first channel of this thread's vector
  C w[9][VEC];                               // [kh·3 + kw][channel]: taps of axis 0 index 0
  if (active) {
    const T* wp = static_cast<const T*>(p.wt) + cv0;
#pragma unroll
    for (int t = 0; t < 9; ++t) {
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(wp + t * p.c));
      const V wv = *reinterpret_cast<const V*>(&raw);
#pragma unroll
      for (int u = 0; u < VEC; ++u) w[t][u] = to_compute(wv.v[u]);
    }
  } else {
#pragma unroll
    for (int t = 0; t < 9; ++t)
#pragma unroll
      for (int u = 0; u < VEC; ++u) w[t][u] = C(0);
  }
  C acc[3][VEC];  // output row o in acc[o % 3]
#pragma unroll
  for (int a = 0; a < 3; ++a)
#pragma unroll
    for (int u = 0; u < VEC; ++u) acc[a][u] = C(0);
  const int64_t y_row = int64_t(p.out[2]) * p.c;
  // Output (n, p0, o1, q0 + q, cv0); only formed for active threads.
  const int64_t y_base = ((n * p.out[0] + p0) * p.out[1] + o1) * y_row + int64_t(q0 + q) * p.c + cv0;
  const uint4* rp = ring + q * CV + v;  // this thread's ring column 0 in slot 0; column kw at kw·CV

  int rd = 0;  // slot of row ii
  for (int base = 0; base < steps; base += 3) {
#pragma unroll
    for (int k = 0; k < 3; ++k) {
      const int ii = base + k;  // base % 3 == 0: output ii − kh lives in acc[(k − kh) mod 3]
      if (ii >= steps) break;
      ring_wait<AHEAD - 1>();
      __syncthreads();
      issue(ii + AHEAD, rd == 0 ? SLOTS - 1 : rd - 1);
      if (active) {
        if (plane && unsigned(i1 + ii) < unsigned(p.in[1])) {
          // Input row ii feeds output row ii − kh through kernel row kh; an output's kernel rows
          // arrive in order, and within a kernel row its columns (kw outermost here, so that
          // one column's VEC inputs are converted at a time), so each output sums its taps in
          // order.
          const bool out2 = ii >= 2, out1 = ii >= 1 && ii - 1 < rows, out0 = ii < rows;
#pragma unroll
          for (int kw = 0; kw < 3; ++kw) {
            const uint4 raw = rp[rd * slot_vecs + kw * CV];
            const V xr = *reinterpret_cast<const V*>(&raw);
            C xv[VEC];
#pragma unroll
            for (int u = 0; u < VEC; ++u) xv[u] = to_compute(xr.v[u]);
#pragma unroll
            for (int kh = 2; kh >= 0; --kh) {
              if (!(kh == 2 ? out2 : kh == 1 ? out1 : out0)) continue;
              C(&a)[VEC] = acc[(k - kh + 3) % 3];
#pragma unroll
              for (int u = 0; u < VEC; ++u) a[u] += xv[u] * w[kh * 3 + kw][u];
            }
          }
        }
        // Output row ii − 2 has all its kernel rows now (ii − 2 < rows since ii < steps).
        if (ii >= 2) {
          C(&a)[VEC] = acc[(k + 1) % 3];
          ring_store16(y + (y_base + int64_t(ii - 2) * y_row), ring_pack<T, VEC>(a));
#pragma unroll
          for (int u = 0; u < VEC; ++u) a[u] = C(0);
        }
      }
      rd = rd + 1 == SLOTS ? 0 : rd + 1;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kBlock)
    depthwise_weights_kernel(const T* __restrict__ w, T* __restrict__ wt, int64_t c, int64_t taps,
                             bool flip) {
  const int64_t total = c * taps;
  for (int64_t e = int64_t(blockIdx.x) * kBlock + threadIdx.x; e < total; e += int64_t(gridDim.x) * kBlock) {
    const int64_t tap = e / c, ch = e % c;
    wt[e] = w[ch * taps + (flip ? taps - 1 - tap : tap)];
  }
}

template <class T, int VEC, int KW>
cudaError_t launch_shape(const DepthwiseParams& p, cudaStream_t stream) {
  // Each launch decomposes its thread index in 32 bits: whole samples, under 2^31 threads.
  const int64_t chunks = p.c / VEC, wblocks = (p.out[2] + V - 1) / V;
  const int64_t per_sample = chunks * wblocks * p.out[1] * p.out[0];
  if (per_sample == 0 || p.n == 0) return cudaSuccess;
  const int64_t samples = per_sample >= 0x7fffffff ? 0 : 0x7fffffff / per_sample;
  if (samples == 0) return cudaErrorInvalidValue;
  Decompose dec{FastDivmod(chunks), FastDivmod(wblocks), FastDivmod(p.out[1]), FastDivmod(p.out[0]), 0};
  const int64_t x_sample = int64_t(p.in[0]) * p.in[1] * p.in[2] * p.c;
  const int64_t y_sample = int64_t(p.out[0]) * p.out[1] * p.out[2] * p.c;
  for (int64_t n0 = 0; n0 < p.n; n0 += samples) {
    DepthwiseParams part = p;
    part.n = min(samples, p.n - n0);
    part.x = static_cast<const T*>(p.x) + n0 * x_sample;
    part.y = static_cast<T*>(p.y) + n0 * y_sample;
    dec.total = part.n * per_sample;
    depthwise_kernel<T, VEC, KW>
        <<<unsigned((dec.total + kBlock - 1) / kBlock), kBlock, 0, stream>>>(part, dec);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <class T, int VEC, int R>
cudaError_t launch_window(const DepthwiseParams& p, cudaStream_t stream) {
  constexpr int kBlockW = kBlock;
  const int64_t chunks = p.c / VEC;
  uint32_t cb_log2 = 0;  // the largest power-of-two tile of channel vectors within 128 bytes
  while (cb_log2 < 5 && chunks % (int64_t(2) << cb_log2) == 0 &&
         (int64_t(2) << cb_log2) * VEC * int64_t(sizeof(T)) <= 128)
    ++cb_log2;
  const int64_t j_total = chunks * p.out[2];
  const int64_t rgroups = (p.out[1] + R - 1) / R;
  const int64_t jblocks = (j_total + kBlockW - 1) / kBlockW;
  const int64_t per_sample = jblocks * rgroups * p.out[0];  // blocks
  if (per_sample == 0 || p.n == 0) return cudaSuccess;
  if (j_total >= 0x7fffffff || per_sample >= 0x7fffffff) return cudaErrorInvalidValue;
  const int64_t samples = 0x7fffffff / per_sample;
  WindowDecompose dec{
      FastDivmod(p.out[2]), FastDivmod(jblocks), FastDivmod(rgroups), FastDivmod(p.out[0]), cb_log2,
      uint32_t(j_total)};
  const int64_t x_sample = int64_t(p.in[0]) * p.in[1] * p.in[2] * p.c;
  const int64_t y_sample = int64_t(p.out[0]) * p.out[1] * p.out[2] * p.c;
  for (int64_t n0 = 0; n0 < p.n; n0 += samples) {
    DepthwiseParams part = p;
    part.n = min(samples, p.n - n0);
    part.x = static_cast<const T*>(p.x) + n0 * x_sample;
    part.y = static_cast<T*>(p.y) + n0 * y_sample;
    depthwise_window_kernel<T, VEC, R><<<unsigned(part.n * per_sample), kBlockW, 0, stream>>>(part, dec);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <class T, int VEC>
cudaError_t launch_window_rows(const DepthwiseParams& p, int rows, cudaStream_t stream) {
  switch (rows) {
    case 4: return launch_window<T, VEC, 4>(p, stream);
    case 8: return launch_window<T, VEC, 8>(p, stream);
    case 16: return launch_window<T, VEC, 16>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

// The ring (16-byte vectors only): strips of up to kRingRowsPerR · rows output rows.
template <class T, class S>
cudaError_t launch_ring(const DepthwiseParams& p, int rows, cudaStream_t stream) {
  constexpr int VEC = 16 / int(sizeof(T));
  constexpr int CV = S::cv;
  if (p.c % VEC != 0) return cudaErrorInvalidValue;
  const int64_t chunk = int64_t(CV) * VEC;
  const int64_t chunks = (p.c + chunk - 1) / chunk;
  // Balanced tiles and strips: as few as the caps allow, each ceil(extent / count) long (the
  // last one possibly shorter).
  const int64_t max_cols = kRingMaxThreads / CV, max_rows = int64_t(kRingRowsPerR) * rows;
  const int64_t tiles = (p.out[2] + max_cols - 1) / max_cols;
  const int64_t strips = (p.out[1] + max_rows - 1) / max_rows;
  if (tiles == 0 || strips == 0 || chunks == 0 || p.out[0] == 0 || p.n == 0) return cudaSuccess;
  const int64_t tile_cols = (p.out[2] + tiles - 1) / tiles;
  const int64_t strip_rows = (p.out[1] + strips - 1) / strips;
  const int64_t per_sample = tiles * strips * chunks * p.out[0];  // blocks
  if (per_sample >= 0x7fffffff) return cudaErrorInvalidValue;
  const int64_t samples = 0x7fffffff / per_sample;
  const int threads = int((tile_cols * CV + 31) / 32 * 32);  // <= kRingMaxThreads
  const size_t smem = size_t(S::ahead + 1) * size_t(tile_cols + 2) * CV * 16;  // <= 30.5 KB
  RingDecompose dec{FastDivmod(tiles), FastDivmod(strips), FastDivmod(chunks), FastDivmod(p.out[0]),
                    int32_t(tile_cols), int32_t(strip_rows)};
  const int64_t x_sample = int64_t(p.in[0]) * p.in[1] * p.in[2] * p.c;
  const int64_t y_sample = int64_t(p.out[0]) * p.out[1] * p.out[2] * p.c;
  for (int64_t n0 = 0; n0 < p.n; n0 += samples) {
    DepthwiseParams part = p;
    part.n = min(samples, p.n - n0);
    part.x = static_cast<const T*>(p.x) + n0 * x_sample;
    part.y = static_cast<T*>(p.y) + n0 * y_sample;
    depthwise_ring_kernel<T, S><<<unsigned(part.n * per_sample), threads, smem, stream>>>(part, dec);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace

bool depthwise_window_fits(const DepthwiseParams& p) {
  return p.k[0] == 1 && p.k[1] == 3 && p.k[2] == 3 && p.stride[1] == 1 && p.stride[2] == 1 && p.dil[1] == 1 &&
         p.dil[2] == 1;
}

cudaError_t launch_depthwise_weights(const void* w, void* wt, int64_t c, const int64_t k[3], bool flip,
                                     Elem elem, cudaStream_t stream) {
  const int64_t taps = k[0] * k[1] * k[2];
  if (c * taps == 0) return cudaSuccess;
  return dispatch_elem(elem, [&](auto tag) {
    using T = typename decltype(tag)::type;
    depthwise_weights_kernel<T><<<grid_for(c * taps, kBlock, 4096), kBlock, 0, stream>>>(
        static_cast<const T*>(w), static_cast<T*>(wt), c, taps, flip);
    return cudaGetLastError();
  });
}

cudaError_t launch_depthwise(const DepthwiseParams& p, DepthwiseKernel kernel, int vec, int rows,
                             bool input_window, cudaStream_t stream) {
  return dispatch_elem(p.elem, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (kernel != DepthwiseKernel::general) {
      if (!depthwise_window_fits(p) || (rows != 4 && rows != 8 && rows != 16)) return cudaErrorInvalidValue;
      const bool ring = kernel == DepthwiseKernel::ring;
      constexpr int W = depthwise_window_vector(int(sizeof(T)), false);
      if (vec != 1 && vec != depthwise_window_vector(int(sizeof(T)), ring)) return cudaErrorInvalidValue;
      // The ring copies 16-byte vectors; without them (C not a multiple of 16 bytes, or unaligned
      // pointers) the window kernel's one-channel form, which gives the same bits.
      if (vec == 1) return launch_window_rows<T, 1>(p, rows, stream);
      return ring ? launch_ring<T, RingShape8>(p, rows, stream) : launch_window_rows<T, W>(p, rows, stream);
    }
    constexpr int VEC = int(16 / sizeof(T));
    const bool window_fits = depthwise_input_window_fits(p.k[2], p.stride[2], p.dil[2], int(sizeof(T)));
    if (input_window && (vec != VEC || !window_fits)) return cudaErrorInvalidValue;
    if (vec == 1) return launch_shape<T, 1, 0>(p, stream);
    if (vec != VEC) return cudaErrorInvalidValue;
    if constexpr (sizeof(T) < 8) {
      if (input_window) return launch_shape<T, VEC, 3>(p, stream);
    }
    return launch_shape<T, VEC, 0>(p, stream);
  });
}

}  // namespace convnd::cuda
