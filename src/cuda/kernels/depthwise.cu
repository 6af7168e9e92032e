// Depthwise convs (one channel in and out per group), memory-bound. A thread owns VEC
// consecutive channels (one 16-byte vector) of kDepthwiseOutputsPerThread consecutive output
// positions along the last axis, consecutive threads owning consecutive channel vectors so that
// a warp reads and writes contiguous runs. For each kernel row it loads the row's weights
// (transposed to [tap, C] by launch_depthwise_weights) once and, for a stride-1 undilated last
// axis of 3 taps, the V + 2 inputs that its V outputs share once (a register window); other
// shapes read each (output, tap) input, which the L1 cache serves. f16 and bf16 accumulate in
// f32, f64 in f64; taps are summed in order.
#include "elem.cuh"

namespace convnd::cuda {

namespace {

constexpr int kBlock = 256;
constexpr int V = kDepthwiseOutputsPerThread;

template <class T, int N>
struct alignas(16) Pack {
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

}  // namespace

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

cudaError_t launch_depthwise(const DepthwiseParams& p, bool vector, int, cudaStream_t stream) {
  const bool window = p.k[2] == 3 && p.stride[2] == 1 && p.dil[2] == 1;
  return dispatch_elem(p.elem, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int VEC = int(16 / sizeof(T));
    if (!vector) return launch_shape<T, 1, 0>(p, stream);
    if constexpr (sizeof(T) < 8) {
      if (window) return launch_shape<T, VEC, 3>(p, stream);
    }
    return launch_shape<T, VEC, 0>(p, stream);
  });
}

}  // namespace convnd::cuda
