// Implicit GEMM conv on the FMA units for f32 (exact: no TF32) and f64, see gemm_conv.cuh for
// the mapping. CUTLASS-SIMT-style kernel: 256 threads, each owning a TM x TM register tile
// (TM = 8 for f32, 4 for f64) as two halves per axis so that every shared-memory read is a
// 16-byte vector that a warp's lanes share or spread over distinct banks; block tile
// 16·TM x 16·TM x 8. A and B tiles travel global -> registers (one 16-byte load per thread
// and tile, issued before the current tile's math) -> shared memory transposed to [k][m] and
// [k][n], double-buffered, one barrier per tile.
// Also the dispatch launch_gemm_conv (tensor cores for f16 / bf16, this kernel otherwise).
#include "gemm_conv.cuh"

namespace convnd::cuda {

namespace {

constexpr int kThreads = 256, kBK = 8;

template <class T>
struct Vec16;  // 16 bytes of T
template <>
struct Vec16<float> {
  using type = float4;
  static constexpr int n = 4;
};
template <>
struct Vec16<double> {
  using type = double2;
  static constexpr int n = 2;
};

template <class T, int N>
__device__ __forceinline__ void load16(const T* p, T (&v)[N]) {
  static_assert(N * sizeof(T) == 16, "16-byte vector");
  const typename Vec16<T>::type u = *reinterpret_cast<const typename Vec16<T>::type*>(p);
  *reinterpret_cast<typename Vec16<T>::type*>(v) = u;
}
template <class T, int N>
__device__ __forceinline__ void store16(T* p, const T (&v)[N]) {
  static_assert(N * sizeof(T) == 16, "16-byte vector");
  *reinterpret_cast<typename Vec16<T>::type*>(p) = *reinterpret_cast<const typename Vec16<T>::type*>(v);
}

template <class T, int TM, bool kVectorLoads>
__global__ void __launch_bounds__(kThreads, 2) gemm_conv_fma_kernel(const GemmConvParams p) {
  constexpr int BM = 16 * TM, BN = 16 * TM, H = TM / 2;  // H: half of a thread tile, one 16-byte read
  constexpr int VE = Vec16<T>::n;                        // elements of one 16-byte global load
  constexpr int kCols = kBK / VE;                        // 16-byte chunks per tile row
  static_assert(BM * kCols == kThreads, "one A chunk and one B chunk per thread");
  static_assert(H == VE, "a half thread tile is one 16-byte vector");
  constexpr int kLd = BM + VE;  // row padding keeps the transposed stores off a single bank
  __shared__ __align__(16) T sa[2][kBK][kLd];
  __shared__ __align__(16) T sb[2][kBK][kLd];
  __shared__ GemmRow rows[BM];

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int64_t m0 = int64_t(blockIdx.x) * BM;
  const int n0 = int(blockIdx.y) * BN;
  const int64_t q = p.group0 + blockIdx.z;

  if (tid < BM) gemm_row_table(p, m0, q, tid, rows);
  __syncthreads();

  // This thread's loads: tile row lrow (of A and of B), k columns kc .. kc + VE - 1.
  const int lrow = tid / kCols, kc = (tid % kCols) * VE;
  const int64_t a_off = rows[lrow].x_off;
  const int32_t ab0 = rows[lrow].b[0], ab1 = rows[lrow].b[1], ab2 = rows[lrow].b[2];
  const int64_t w_len = int64_t(p.w_k[0]) * p.w_k[1] * p.w_k[2] * p.cg;
  const bool b_row_in = n0 + lrow < p.og;
  const int64_t b_off = (q * p.og + n0 + lrow) * w_len;

  TapWalk walk;
  if constexpr (kVectorLoads) walk.start(p, kc);
  int64_t k_next = kc;
  T av[VE], bv[VE];
  auto load_global = [&]() {
    if constexpr (kVectorLoads) {
      const bool k_in = walk.k < p.k;
      if (k_in && row_inside(p, ab0, ab1, ab2, walk.d)) {
        load16(x + a_off + walk.x_tap, av);
      } else {
#pragma unroll
        for (int e = 0; e < VE; ++e) av[e] = T(0);
      }
      if (k_in && b_row_in) {
        load16(w + b_off + walk.w_tap, bv);
      } else {
#pragma unroll
        for (int e = 0; e < VE; ++e) bv[e] = T(0);
      }
      walk.advance(p, kBK);
    } else {
#pragma unroll
      for (int e = 0; e < VE; ++e) {
        const TapPoint tp = tap_point(p, k_next + e);
        av[e] = tp.valid && row_inside(p, ab0, ab1, ab2, tp.d) ? x[a_off + tp.x_tap] : T(0);
        bv[e] = tp.valid && b_row_in ? w[b_off + tp.w_tap] : T(0);
      }
      k_next += kBK;
    }
  };
  auto store_shared = [&](int buf) {
#pragma unroll
    for (int e = 0; e < VE; ++e) {
      sa[buf][kc + e][lrow] = av[e];
      sb[buf][kc + e][lrow] = bv[e];
    }
  };

  // Warps 2 (M) x 4 (N); lanes 8 (M) x 4 (N). Rows of this thread: rm·H + i and 8·H + rm·H + i
  // (i < H) of its warp's 16·H rows; columns likewise with rn over 4 lanes.
  const int rm = lane & 7, rn = lane >> 3;
  const int row0 = (warp & 1) * 8 * TM + rm * H, col0 = (warp >> 1) * 4 * TM + rn * H;
  T acc[TM][TM];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TM; ++j) acc[i][j] = T(0);

  const int k_tiles = int((p.k + kBK - 1) / kBK);
  load_global();
  store_shared(0);
  __syncthreads();
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int buf = kt & 1;
    const bool more = kt + 1 < k_tiles;
    if (more) load_global();  // in flight during this tile's math
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      T a[TM], b[TM];
      T(&a0)[H] = *reinterpret_cast<T(*)[H]>(&a[0]);
      T(&a1)[H] = *reinterpret_cast<T(*)[H]>(&a[H]);
      T(&b0)[H] = *reinterpret_cast<T(*)[H]>(&b[0]);
      T(&b1)[H] = *reinterpret_cast<T(*)[H]>(&b[H]);
      load16(&sa[buf][kk][row0], a0);
      load16(&sa[buf][kk][row0 + 8 * H], a1);
      load16(&sb[buf][kk][col0], b0);
      load16(&sb[buf][kk][col0 + 4 * H], b1);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TM; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    if (more) store_shared(buf ^ 1);
    __syncthreads();
  }

  // Each thread writes its rows as 16-byte vectors where channels allow.
  const int64_t n_here = p.og - n0 < BN ? p.og - n0 : int64_t(BN);
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int r = row0 + (i < H ? i : 8 * H + i - H);
    const int64_t y_off = rows[r].y_off;
    if (y_off < 0) continue;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int c = col0 + half * 4 * H;
      T* dst = y + y_off + n0 + c;
      const T(&v)[H] = *reinterpret_cast<const T(*)[H]>(&acc[i][half * H]);
      if (p.vector_stores && c + H <= n_here) {
        store16(dst, v);
      } else {
#pragma unroll
        for (int e = 0; e < H; ++e)
          if (c + e < n_here) dst[e] = v[e];
      }
    }
  }
}

template <class T, int TM, bool kVectorLoads>
cudaError_t launch_tile(const GemmConvParams& p, cudaStream_t stream) {
  constexpr int B = 16 * TM;
  const int64_t gx = (p.m + B - 1) / B, gy = (p.og + B - 1) / B;
  if (gx > 0x7fffffff || gy > 65535 || p.groups > 65535) return cudaErrorInvalidConfiguration;
  gemm_conv_fma_kernel<T, TM, kVectorLoads>
      <<<dim3(unsigned(gx), unsigned(gy), unsigned(p.groups)), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_gemm_conv_fma(const GemmConvParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.og == 0 || p.groups == 0) return cudaSuccess;
  if (p.elem == Elem::f32)
    return p.vector_loads ? launch_tile<float, 8, true>(p, stream) : launch_tile<float, 8, false>(p, stream);
  if (p.elem == Elem::f64) return launch_tile<double, 4, false>(p, stream);
  return cudaErrorInvalidValue;
}

cudaError_t launch_gemm_conv(const GemmConvParams& p, cudaStream_t stream) {
  if (p.elem == Elem::f16 || p.elem == Elem::bf16) return launch_gemm_conv_mma(p, stream);
  return launch_gemm_conv_fma(p, stream);
}

}  // namespace convnd::cuda
