// Grouped convs with few output channels per group (O/g of 8, 16 or 32: ResNeXt's 32 groups
// of 8), f16 / bf16 on the tensor cores. The implicit GEMM kernel (implicit_gemm_mma.cu) runs
// one group per block with a 64-wide tile of output channels, so at O/g = 8 seven eighths of
// its multiply-adds are on zero columns. Here a block covers GB = 64 / (O/g) groups at once:
// its 64 columns are the output channels q0·og .. q0·og + 63 (contiguous in w and in y), and
// each 8-column MMA tile reads the A tile of its own group. Per stage a block loads, for each
// of its groups, 64 rows × 32 k of A (the group's channels, implicit im2col, padding as zeros)
// and 64 rows of B (output channels) × 32 k; every group's K is walked in the same
// order (taps × channels, 16 at a time) as the implicit GEMM walks it, with the same zero
// fill past K, so each output gets the same MMAs on the same operands in the same order: the
// same bits as implicit_gemm__cuda (which the tests check).
//
// Block: 64 rows × 64 columns, 4 warps, 3 cp.async stages of GB·4 KiB (A) + 4 KiB (B).
// Warps: for GB >= 4 each takes GB/4 whole groups over all 64 rows; for GB = 2 (O/g = 32) two
// warps share a group, 32 rows each.
#include <atomic>
#include <cstdint>

#include "gemm_conv.cuh"
#include "mma_sync.cuh"
#include "smem_opt_in.h"

namespace convnd::cuda {

namespace {

constexpr int kBM = 64, kBN = 64, kBK = 32, kStages = 3, kThreads = 128;
constexpr int kPass = kThreads / 4;  // rows a loader pass covers (4 chunks per row)
constexpr int kRowBytes = kTileRowBytes;
static_assert(kBK * 2 == kTileRowBytes);

template <int OG>
constexpr int kGroupsPerBlock = kBN / OG;

template <int OG>
constexpr int smem_bytes() {
  return kStages * (kGroupsPerBlock<OG> * kBM + kBN) * kRowBytes + kBM * int(sizeof(GemmRow));
}

template <class T, int OG>
__global__ void __launch_bounds__(kThreads, 2) grouped_mma_kernel(const GemmConvParams p) {
  constexpr int GB = kGroupsPerBlock<OG>;
  constexpr int kAGroup = kBM * kRowBytes;          // one group's A tile of a stage
  constexpr int kAStage = GB * kAGroup, kBStage = kBN * kRowBytes;
  constexpr int kAR = kBM / kPass, kBR = kBN / kPass;  // tile rows per thread (2 and 2)
  // Warp tiling: GW groups per warp, WPG warps per group, MT 16-row MMA tiles, F 8-column
  // MMA tiles per group.
  constexpr int GW = GB >= 4 ? GB / 4 : 1, WPG = GB >= 4 ? 1 : 4 / GB;
  constexpr int MT = kBM / 16 / WPG, F = OG / 8, NB = GW * F;  // NB: 8-column B tiles of a warp
  static_assert(NB % 2 == 0, "B fragments come in pairs (ldmatrix x4)");
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* const sa = smem;
  unsigned char* const sb = smem + kStages * kAStage;
  GemmRow* const rows = reinterpret_cast<GemmRow*>(smem + kStages * (kAStage + kBStage));

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  T* __restrict__ y = static_cast<T*>(p.y);
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int64_t m0 = int64_t(blockIdx.x) * kBM;
  const int gb0 = int(blockIdx.y) * GB;        // first group of the block, within the launch
  const int64_t q0 = p.group0 + gb0;           // ... and in the problem
  const int groups_here = p.groups - gb0 < GB ? p.groups - gb0 : GB;

  // Row table with group q0: x_off points at group q0's first channel, y_off at its first output.
  if (tid < kBM) gemm_row_table(p, m0, q0, tid, rows);
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
  const int64_t b_off = (q0 * OG + lrow) * w_len;
  const int dst0 = swizzle(lrow, chunk);  // + i·kPass rows: the swizzle repeats every 8 rows
  const unsigned sa0 = smem_addr(sa), sb0 = smem_addr(sb);

  TapWalk walk;
  walk.start(p, chunk * 8);

  auto load_stage = [&](int stage) {
    const unsigned a_dst = sa0 + stage * kAStage + dst0, b_dst = sb0 + stage * kBStage + dst0;
    const bool k_in = walk.k < p.k;
#pragma unroll
    for (int i = 0; i < kAR; ++i) {
      const bool row_in = k_in && row_inside(p, a_b[i][0], a_b[i][1], a_b[i][2], walk.d);
#pragma unroll
      for (int j = 0; j < GB; ++j) {
        const bool v = row_in && j < groups_here;
        cp_async16(a_dst + j * kAGroup + i * kPass * kRowBytes, v ? x + a_off[i] + j * p.cg + walk.x_tap : x, v);
      }
    }
#pragma unroll
    for (int i = 0; i < kBR; ++i) {
      const bool v = k_in && (lrow + kPass * i) / OG < groups_here;
      cp_async16(b_dst + i * kPass * kRowBytes, v ? w + b_off + i * kPass * w_len + walk.w_tap : w, v);
    }
    walk.advance(p, kBK);
  };

  // This warp's groups (block-relative), rows and B rows.
  const int warp_g = GB >= 4 ? warp * GW : warp % GB;
  const int warp_m = GB >= 4 ? 0 : (warp / GB) * (kBM / WPG);
  const int warp_n = warp_g * OG;
  unsigned a_frag[2], b_frag[2];
#pragma unroll
  for (int ks = 0; ks < 2; ++ks) {
    a_frag[ks] = sa0 + warp_g * kAGroup + swizzle(warp_m + (lane & 15), ks * 2 + (lane >> 4));
    b_frag[ks] = sb0 + swizzle(warp_n + (lane & 7) + ((lane >> 4) << 3), ks * 2 + ((lane >> 3) & 1));
  }

  float acc[GW][F][MT][4];
#pragma unroll
  for (int g = 0; g < GW; ++g)
#pragma unroll
    for (int f = 0; f < F; ++f)
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[g][f][i][e] = 0.0f;

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
      unsigned bf[NB][2];
#pragma unroll
      for (int j = 0; j < NB / 2; ++j) {
        unsigned r[4];
        ldmatrix_x4(b_frag[ks] + stage * kBStage + j * 16 * kRowBytes, r);
        bf[2 * j][0] = r[0];
        bf[2 * j][1] = r[1];
        bf[2 * j + 1][0] = r[2];
        bf[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int g = 0; g < GW; ++g)
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          unsigned af[4];
          ldmatrix_x4(a_frag[ks] + stage * kAStage + g * kAGroup + i * 16 * kRowBytes, af);
#pragma unroll
          for (int f = 0; f < F; ++f) mma_16816<T>(acc[g][f][i], af, bf[g * F + f][0], bf[g * F + f][1]);
        }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the pipeline's shared memory becomes the output tile

  // Output tile [kBM][kBN + 8] of T (the 8 keep the fragment stores free of bank conflicts).
  constexpr int kLd = kBN + 8;
  T* const tile = reinterpret_cast<T*>(smem);
  const int fr = lane >> 2, fc = (lane & 3) * 2;
#pragma unroll
  for (int g = 0; g < GW; ++g)
#pragma unroll
    for (int f = 0; f < F; ++f)
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int r = warp_m + i * 16 + fr, c = warp_n + g * OG + f * 8 + fc;
        *reinterpret_cast<unsigned*>(tile + r * kLd + c) = pack2<T>(acc[g][f][i][0], acc[g][f][i][1]);
        *reinterpret_cast<unsigned*>(tile + (r + 8) * kLd + c) = pack2<T>(acc[g][f][i][2], acc[g][f][i][3]);
      }
  __syncthreads();

  constexpr int kChunks = kBN / 8;  // 16-byte chunks per tile row
  const int oc = (tid % kChunks) * 8;
  const int n_here = groups_here * OG;
  for (int r = tid / kChunks; r < kBM; r += kThreads / kChunks) {
    const int64_t y_off = rows[r].y_off;
    if (y_off < 0 || oc >= n_here) continue;
    *reinterpret_cast<uint4*>(y + y_off + oc) = *reinterpret_cast<const uint4*>(tile + r * kLd + oc);
  }
}

template <class T, int OG>
cudaError_t launch_og(const GemmConvParams& p, cudaStream_t stream) {
  constexpr int bytes = smem_bytes<OG>();
  auto kernel = grouped_mma_kernel<T, OG>;
  static std::atomic<uint64_t> opted_in{0};
  const cudaError_t attr = opt_in_shared_memory(reinterpret_cast<const void*>(kernel), bytes, &opted_in);
  if (attr != cudaSuccess) return attr;
  constexpr int GB = kGroupsPerBlock<OG>;
  const int64_t gx = (p.m + kBM - 1) / kBM, gy = (int64_t(p.groups) + GB - 1) / GB;
  if (gx > 0x7fffffff || gy > 65535) return cudaErrorInvalidConfiguration;
  kernel<<<dim3(unsigned(gx), unsigned(gy), 1), kThreads, bytes, stream>>>(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_type(const GemmConvParams& p, cudaStream_t stream) {
  if (p.og == 8) return launch_og<T, 8>(p, stream);
  if (p.og == 16) return launch_og<T, 16>(p, stream);
  if (p.og == 32) return launch_og<T, 32>(p, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launch_grouped_mma(const GemmConvParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.groups == 0) return cudaSuccess;
  // 16-byte loads and stores only (the host checks shapes and addresses first).
  if (!p.vector_loads || !p.vector_stores || p.cg % 8 != 0) return cudaErrorInvalidValue;
  if (p.elem == Elem::bf16) return launch_type<__nv_bfloat16>(p, stream);
  if (p.elem == Elem::f16) return launch_type<__half>(p, stream);
  return cudaErrorInvalidValue;
}

}  // namespace convnd::cuda
