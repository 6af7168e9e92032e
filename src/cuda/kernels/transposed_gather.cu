// Few-channel transposed and input-dilated convs along one axis (long-kernel audio
// upsampling: op=convT c=1 o=1 k=4096 stride=1024), memory-bound.
//
// By stride phases (src/core/phases.h) output position p = phi + Pp·m is a short dot product
// over the taps of phase phi: y[n, p, o] = sum_j sum_c x[n, m·st + j·dil − lo_phi, q·cg + c] ·
// w[o, k_first_phi + j·k_step_phi, c]. y [N, P, O] is read as rows m of Pp·O columns (phi, o),
// contiguous in memory. A thread owns V consecutive columns, keeps their taps' weights in
// registers, and streams down the rows: per row it loads a few (cached) inputs, does
// taps·cg·V multiply-adds and writes V outputs with one vector store. No work touches a zero
// inserted by input dilation, and y is written exactly once: the traffic is y plus x.
#include "elem.cuh"

namespace convnd::cuda {

namespace {

constexpr int kBlock = 256;

template <class T, int V>
__device__ __forceinline__ void store_vector(T* dst, const compute_t<T> (&acc)[V]) {
  constexpr int bytes = V * int(sizeof(T));
  static_assert(bytes == 4 || bytes == 8 || bytes == 16, "vector store width");
  union {
    T v[V];
    uint4 u16;
    uint2 u8;
    unsigned u4;
  } pack;
#pragma unroll
  for (int v = 0; v < V; ++v) pack.v[v] = from_compute<T>(acc[v]);
  if constexpr (bytes == 16)
    *reinterpret_cast<uint4*>(dst) = pack.u16;
  else if constexpr (bytes == 8)
    *reinterpret_cast<uint2*>(dst) = pack.u8;
  else
    *reinterpret_cast<unsigned*>(dst) = pack.u4;
}

// V columns per thread; TW >= taps·cg of every phase (the register tile of weights).
// Register caps: 3 blocks (24 warps) per multiprocessor for the small tile, 2 for the large.
template <class T, int V, int TW>
__global__ void __launch_bounds__(kBlock, TW <= 4 ? 3 : 2)
    transposed_gather_kernel(GatherParams p, int tpr, int rows_per_pass, int64_t rows_per_block,
                        bool vector_store) {
  using C = compute_t<T>;
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int lane = int(threadIdx.x) % tpr, row_off = int(threadIdx.x) / tpr;
  if (row_off >= rows_per_pass) return;
  const int cols = int(p.pp * p.o);
  const int col0 = (int(blockIdx.x) * tpr + lane) * V;
  if (col0 >= cols) return;
  const int cg = int(p.cg);

  // Per column: its taps' weights; the first column's phase input offset, tap·channel count
  // and channel base. Columns that read other inputs (a phase or group boundary inside the
  // thread's columns) re-read their phase per row: rare, and it keeps registers for weights.
  C wr[V][TW];
  int64_t lo0 = 0, chan0 = 0;
  int tc0 = 0;
  bool shared = true;  // all columns read the same inputs: load each once
  int last_phi = 0;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const int col = col0 + v;
    const bool ok = col < cols;
    const int phi = (ok ? col : col0) / int(p.o);
    const int64_t o = (ok ? col : col0) % int(p.o);
    const GatherPhase ph = p.phases[phi];
    const int64_t chan = (o / p.og) * p.cg;
    const int tc = ok ? int(ph.taps) * cg : 0;
    if (v == 0) {
      lo0 = ph.lo;
      chan0 = chan;
      tc0 = tc;
    } else if (ok && (ph.lo != lo0 || chan != chan0 || tc != tc0)) {
      shared = false;
    }
    if (ok) last_phi = phi;
    int j = 0, c = 0;
#pragma unroll
    for (int t = 0; t < TW; ++t) {
      wr[v][t] = t < tc ? load(w + (o * p.k + ph.k_first + j * ph.k_step) * p.cg + c) : C(0);
      if (++c == cg) {
        c = 0;
        ++j;
      }
    }
  }
  const int ncols = min(V, cols - col0);

  const int64_t total_rows = p.n * p.rows;
  const int64_t r_begin = int64_t(blockIdx.y) * rows_per_block + row_off;
  const int64_t r_end = min(total_rows, int64_t(blockIdx.y + 1) * rows_per_block);
  if (r_begin >= r_end) return;
  int64_t n = r_begin / p.rows, m = r_begin % p.rows;
  for (int64_t r = r_begin; r < r_end; r += rows_per_pass) {
    const T* xs = x + n * p.in * p.c;
    const int64_t ibase = m * p.stride;
    C acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = C(0);
    if (shared) {
      int64_t jd = 0;
      int c = 0;
#pragma unroll
      for (int t = 0; t < TW; ++t) {
        if (t < tc0) {
          const int64_t i = ibase + jd - lo0;
          if (i >= 0 && i < p.in) {
            const C xv = load(xs + i * p.c + chan0 + c);
#pragma unroll
            for (int v = 0; v < V; ++v) acc[v] += xv * wr[v][t];
          }
        }
        if (++c == cg) {
          c = 0;
          jd += p.dil;
        }
      }
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const int col = col0 + (v < ncols ? v : 0);
        const GatherPhase ph = p.phases[col / int(p.o)];
        const int64_t chan = ((col % int(p.o)) / p.og) * p.cg;
        const int tc = v < ncols ? int(ph.taps) * cg : 0;
        int64_t jd = 0;
        int c = 0;
#pragma unroll
        for (int t = 0; t < TW; ++t) {
          if (t < tc) {
            const int64_t i = ibase + jd - ph.lo;
            if (i >= 0 && i < p.in) acc[v] += load(xs + i * p.c + chan + c) * wr[v][t];
          }
          if (++c == cg) {
            c = 0;
            jd += p.dil;
          }
        }
      }
    }
    // Row m holds positions m·Pp + phi; the last row of a sample may be partial.
    T* yr = y + (n * p.out + m * p.pp) * p.o + col0;
    const int64_t pos0 = m * p.pp;
    if (vector_store && ncols == V && pos0 + last_phi < p.out) {
      store_vector<T, V>(yr, acc);
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v)
        if (v < ncols && pos0 + (col0 + v) / int(p.o) < p.out) yr[v] = from_compute<T>(acc[v]);
    }
    m += rows_per_pass;
    while (m >= p.rows) {
      m -= p.rows;
      ++n;
    }
  }
}

template <class T, int V, int TW>
cudaError_t launch_tile(const GatherParams& p, int sm_count, cudaStream_t stream) {
  const int64_t cols = p.pp * p.o;
  const int64_t chunks = (cols + V - 1) / V;
  const int tpr = int(chunks < kBlock ? chunks : kBlock);
  const int rows_per_pass = kBlock / tpr;
  const int64_t gx = (chunks + tpr - 1) / tpr;
  if (gx > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const int64_t total_rows = p.n * p.rows;
  const int64_t passes = (total_rows + rows_per_pass - 1) / rows_per_pass;
  // One wave of resident blocks, each streaming a contiguous range of rows.
  int resident = 0;
  cudaError_t e =
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, transposed_gather_kernel<T, V, TW>, kBlock, 0);
  if (e != cudaSuccess) return e;
  int64_t gy = (int64_t(sm_count) * (resident > 0 ? resident : 1) + gx - 1) / gx;
  if (gy > passes) gy = passes;
  if (gy > 65535) gy = 65535;
  if (gy < 1) gy = 1;
  const int64_t rows_per_block = ((passes + gy - 1) / gy) * rows_per_pass;
  gy = (total_rows + rows_per_block - 1) / rows_per_block;
  const bool vector_store =
      cols % V == 0 && (p.out * p.o) % V == 0 && reinterpret_cast<uintptr_t>(p.y) % (V * sizeof(T)) == 0;
  transposed_gather_kernel<T, V, TW><<<dim3(unsigned(gx), unsigned(gy)), kBlock, 0, stream>>>(
      p, tpr, rows_per_pass, rows_per_block, vector_store);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_transposed_gather(const GatherParams& p, int sm_count, cudaStream_t stream) {
  if (p.n == 0 || p.rows == 0) return cudaSuccess;
  if ((p.tap_channels != 4 && p.tap_channels != kGatherMaxTapChannels) || p.taps_max * p.cg > p.tap_channels)
    return cudaErrorInvalidValue;
  return dispatch_elem(p.elem, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int kSmallV = gather_columns_per_thread(int(sizeof(T)), 4);
    constexpr int kLargeV = gather_columns_per_thread(int(sizeof(T)), kGatherMaxTapChannels);
    if (p.tap_channels == 4) return launch_tile<T, kSmallV, 4>(p, sm_count, stream);
    return launch_tile<T, kLargeV, kGatherMaxTapChannels>(p, sm_count, stream);
  });
}

}  // namespace convnd::cuda
