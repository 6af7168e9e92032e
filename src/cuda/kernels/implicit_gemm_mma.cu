// Implicit GEMM conv on the tensor cores for f16 and bf16 (f32 accumulation), see
// gemm_conv.cuh for the mapping. CUTLASS-2-style multistage kernel:
//   block tile 128 x BN x 32: BN = 128 or 64 with 4 warps of 64 x BN/2, or BN = 256 with 8 warps
//   of 64 x 64 (one block per SM, a third less L2 traffic per FLOP than 128 x 128); mma.sync m16n8k16;
//   A and B tiles go global -> shared with 16-byte cp.async (zero-fill for padding, rows past M,
//   channels past O/g and k past K), 4 stages deep; fragments come from shared memory through
//   ldmatrix, rows of 64 bytes with their four 16-byte chunks XOR-swizzled so that ldmatrix
//   reads are free of bank conflicts;
//   the epilogue converts to the output type through shared memory and writes 16-byte rows.
// Channel counts that 16-byte loads cannot take (C/g not a multiple of 8, or unaligned
// tensors) use the same kernel with an element-wise loader (kVectorLoads = false).
#include <atomic>
#include <cstdint>

#include "gemm_conv.cuh"
#include "mma_sync.cuh"
#include "smem_opt_in.h"

namespace convnd::cuda {

namespace {

constexpr int kBM = 128, kBK = 32, kStages = 4;
// Threads of a block: 8 warps for the 256-wide tile, 4 otherwise.
template <int BN>
constexpr int kThreadsFor = BN == 256 ? 256 : 128;
constexpr int kRowBytes = kTileRowBytes;  // one tile row of kBK = 32 16-bit elements
static_assert(kBK * 2 == kTileRowBytes);

template <int BN>
constexpr int smem_bytes() {
  return kStages * (kBM + BN) * kRowBytes + kBM * int(sizeof(GemmRow));
}

// Thread t loads 16-byte chunk (t % 4) of tile rows t / 4 + kPass·i (kPass = threads / 4):
// kBM / kPass rows of A and BN / kPass rows of B, all at the same k, so one K walk serves them all.
template <class T, int BN, bool kVectorLoads>
__global__ void __launch_bounds__(kThreadsFor<BN>, 256 / kThreadsFor<BN>)
    gemm_conv_mma_kernel(const GemmConvParams p) {
  constexpr int kThreads = kThreadsFor<BN>, kPass = kThreads / 4;
  constexpr int kAR = kBM / kPass, kBR = BN / kPass;                // tile rows per thread
  constexpr int WN = BN == 256 ? 64 : BN / 2, NT = WN / 8, MT = 4;  // warp tile 64 x WN: MT x NT mma tiles
  constexpr int kAStage = kBM * kRowBytes, kBStage = BN * kRowBytes;
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* const sa = smem;
  unsigned char* const sb = smem + kStages * kAStage;
  GemmRow* const rows = reinterpret_cast<GemmRow*>(smem + kStages * (kAStage + kBStage));

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int64_t m0 = int64_t(blockIdx.x) * kBM;
  const int n0 = int(blockIdx.y) * BN;
  const int64_t q = p.group0 + blockIdx.z;

  if (tid < kBM) gemm_row_table(p, m0, q, tid, rows);
  __syncthreads();

  const int lrow = tid >> 2, chunk = tid & 3;
  int64_t a_off[kAR];
  int32_t a_b[kAR][3];
#pragma unroll
  for (int i = 0; i < kAR; ++i) {
    const GemmRow& r = rows[lrow + kPass * i];
    a_off[i] = r.x_off;
    a_b[i][0] = r.b[0];
    a_b[i][1] = r.b[1];
    a_b[i][2] = r.b[2];
  }
  const int64_t w_len = int64_t(p.w_k[0]) * p.w_k[1] * p.w_k[2] * p.cg;  // one output channel's weights
  const int64_t b_off = (q * p.og + n0 + lrow) * w_len;
  const int dst0 = swizzle(lrow, chunk);  // + i·kPass rows: the swizzle repeats every 8 rows
  const unsigned sa0 = smem_addr(sa), sb0 = smem_addr(sb);

  TapWalk walk;
  if constexpr (kVectorLoads) walk.start(p, chunk * 8);
  int64_t k_next = chunk * 8;  // the element-wise loader's k

  auto load_stage = [&](int stage) {
    const unsigned a_dst = sa0 + stage * kAStage + dst0, b_dst = sb0 + stage * kBStage + dst0;
    if constexpr (kVectorLoads) {
      const bool k_in = walk.k < p.k;
#pragma unroll
      for (int i = 0; i < kAR; ++i) {
        const bool v = k_in && row_inside(p, a_b[i][0], a_b[i][1], a_b[i][2], walk.d);
        cp_async16(a_dst + i * kPass * kRowBytes, v ? x + a_off[i] + walk.x_tap : x, v);
      }
#pragma unroll
      for (int i = 0; i < kBR; ++i) {
        const bool v = k_in && n0 + lrow + kPass * i < p.og;
        cp_async16(b_dst + i * kPass * kRowBytes, v ? w + b_off + i * kPass * w_len + walk.w_tap : w, v);
      }
      walk.advance(p, kBK);
    } else {
      // Element by element: k decomposed from scratch, plain loads, one 16-byte shared store per row.
      unsigned short av[kAR][8], bv[kBR][8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const TapPoint tp = tap_point(p, k_next + e);
#pragma unroll
        for (int i = 0; i < kAR; ++i) {
          const bool v = tp.valid && row_inside(p, a_b[i][0], a_b[i][1], a_b[i][2], tp.d);
          av[i][e] = v ? __ldg(reinterpret_cast<const unsigned short*>(x + a_off[i] + tp.x_tap)) : 0;
        }
#pragma unroll
        for (int i = 0; i < kBR; ++i) {
          const bool v = tp.valid && n0 + lrow + kPass * i < p.og;
          bv[i][e] =
              v ? __ldg(reinterpret_cast<const unsigned short*>(w + b_off + i * kPass * w_len + tp.w_tap))
                : 0;
        }
      }
      k_next += kBK;
#pragma unroll
      for (int i = 0; i < kAR; ++i)
        *reinterpret_cast<uint4*>(sa + stage * kAStage + dst0 + i * kPass * kRowBytes) =
            *reinterpret_cast<const uint4*>(av[i]);
#pragma unroll
      for (int i = 0; i < kBR; ++i)
        *reinterpret_cast<uint4*>(sb + stage * kBStage + dst0 + i * kPass * kRowBytes) =
            *reinterpret_cast<const uint4*>(bv[i]);
    }
  };

  // ldmatrix addresses of this lane (stage 0, m-tile 0 / n-tile pair 0, both 16-wide k steps).
  const int warp_m = (warp & 1) * 64, warp_n = (warp >> 1) * WN;  // 2 warps along M, BN / WN along N
  unsigned a_frag[2], b_frag[2];
#pragma unroll
  for (int ks = 0; ks < 2; ++ks) {
    a_frag[ks] = sa0 + swizzle(warp_m + (lane & 15), ks * 2 + (lane >> 4));
    b_frag[ks] = sb0 + swizzle(warp_n + (lane & 7) + ((lane >> 4) << 3), ks * 2 + ((lane >> 3) & 1));
  }

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  const int k_tiles = int((p.k + kBK - 1) / kBK);
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < k_tiles) load_stage(s);
    cp_async_commit();
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile kt is in shared memory; every warp is done with tile kt - 1
    const int next = kt + kStages - 1;
    if (next < k_tiles) load_stage(next % kStages);
    cp_async_commit();
    const int stage = kt % kStages;
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      unsigned af[MT][4], bf[NT][2];
#pragma unroll
      for (int i = 0; i < MT; ++i) ldmatrix_x4(a_frag[ks] + stage * kAStage + i * 16 * kRowBytes, af[i]);
#pragma unroll
      for (int j = 0; j < NT / 2; ++j) {
        unsigned r[4];
        ldmatrix_x4(b_frag[ks] + stage * kBStage + j * 16 * kRowBytes, r);
        bf[2 * j][0] = r[0];
        bf[2 * j][1] = r[1];
        bf[2 * j + 1][0] = r[2];
        bf[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) mma_16816<T>(acc[i][j], af[i], bf[j][0], bf[j][1]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline's shared memory becomes the output tile

  // Output tile [kBM][BN + 8] of T (the 8 keep the fragment stores free of bank conflicts).
  constexpr int kLd = BN + 8;
  T* const tile = reinterpret_cast<T*>(smem);
  const int fr = lane >> 2, fc = (lane & 3) * 2;
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const int r = warp_m + i * 16 + fr, c = warp_n + j * 8 + fc;
      *reinterpret_cast<unsigned*>(tile + r * kLd + c) = pack2<T>(acc[i][j][0], acc[i][j][1]);
      *reinterpret_cast<unsigned*>(tile + (r + 8) * kLd + c) = pack2<T>(acc[i][j][2], acc[i][j][3]);
    }
  __syncthreads();

  constexpr int kChunks = BN / 8;  // 16-byte chunks per tile row
  const int oc = (tid % kChunks) * 8;
  const int n_here = p.og - n0 < BN ? int(p.og - n0) : BN;
  for (int r = tid / kChunks; r < kBM; r += kThreads / kChunks) {
    const int64_t y_off = rows[r].y_off;
    if (y_off < 0 || oc >= n_here) continue;
    const T* src = tile + r * kLd + oc;
    T* dst = y + y_off + n0 + oc;
    if (p.vector_stores) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
    } else {
      for (int e = 0; e < 8 && oc + e < n_here; ++e) dst[e] = src[e];
    }
  }
}

template <class T, int BN, bool kVectorLoads>
cudaError_t launch_tile(const GemmConvParams& p, cudaStream_t stream) {
  constexpr int kThreads = kThreadsFor<BN>;
  constexpr int bytes = smem_bytes<BN>();
  auto kernel = gemm_conv_mma_kernel<T, BN, kVectorLoads>;
  // Above 48 KiB of shared memory a kernel must opt in (once per device).
  static std::atomic<uint64_t> opted_in{0};
  const cudaError_t attr = opt_in_shared_memory(reinterpret_cast<const void*>(kernel), bytes, &opted_in);
  if (attr != cudaSuccess) return attr;
  const int64_t gx = (p.m + kBM - 1) / kBM, gy = (p.og + BN - 1) / BN;
  if (gx > 0x7fffffff || gy > 65535 || p.groups > 65535) return cudaErrorInvalidConfiguration;
  kernel<<<dim3(unsigned(gx), unsigned(gy), unsigned(p.groups)), kThreads, bytes, stream>>>(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_type(const GemmConvParams& p, cudaStream_t stream) {
  if (!p.vector_loads) return launch_tile<T, 64, false>(p, stream);
  if (p.block_n == 64) return launch_tile<T, 64, true>(p, stream);
  if (p.block_n == 256) return launch_tile<T, 256, true>(p, stream);
  return launch_tile<T, 128, true>(p, stream);
}

}  // namespace

cudaError_t launch_gemm_conv_mma(const GemmConvParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.og == 0 || p.groups == 0) return cudaSuccess;
  if (p.elem == Elem::bf16) return launch_type<__nv_bfloat16>(p, stream);
  if (p.elem == Elem::f16) return launch_type<__half>(p, stream);
  return cudaErrorInvalidValue;
}

}  // namespace convnd::cuda
