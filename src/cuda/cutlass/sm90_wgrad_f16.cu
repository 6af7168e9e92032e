// Weight gradients (float partial sums) of f16 on CUTLASS's sm90 kernels (sm90_conv.cuh), 2-D and 3-D.
// A translation unit of its own because each instantiation costs about a minute of compile
// time: ninja runs them side by side.
#include "cuda/cutlass/sm90_conv.cuh"

namespace convnd::cuda::sm90 {

const Kernel* wgrad_f16(int rank, int tile, int cluster_n) {
  using E = cutlass::half_t;
  // M runs over the output channels (64 or 128 of them a tile), N over (C, S, R[, T]), K over
  // the samples' pixels.
  // 64-row tiles (at most 64 output channels) also on clusters of 2 CTAs along N, which share
  // one load of dy's tile (each loads half and multicasts it; 3 would not split the tile): N
  // runs over (C, taps) a tap at a time, so a 3x3 conv of 64 channels has 9 N tiles that all
  // read the same dy rows. With every sample chunk running, that layer's loads bound it on an
  // H100: 0.46-0.51 ms at any chunking from 8 to 32, where one chunk's kernel alone ran its
  // MMAs at 80% of peak (bench/results/device-runs/*-2026-12-08-h100*).
  if (cluster_n == 2) {
    if (rank == 2 && tile == 64) return Impl<Op::wgrad, E, 2, 64, 128, 1, 2>::kernel("wgrad_f16_2d_64x128_c1x2");
    if (rank == 3 && tile == 64) return Impl<Op::wgrad, E, 3, 64, 128, 1, 2>::kernel("wgrad_f16_3d_64x128_c1x2");
    return nullptr;
  }
  if (cluster_n != 1) return nullptr;
  if (rank == 2 && tile == 128) return Impl<Op::wgrad, E, 2, 128, 128, 1>::kernel("wgrad_f16_2d_128x128");
  if (rank == 2 && tile == 64) return Impl<Op::wgrad, E, 2, 64, 128, 1>::kernel("wgrad_f16_2d_64x128");
  if (rank == 3 && tile == 128) return Impl<Op::wgrad, E, 3, 128, 128, 1>::kernel("wgrad_f16_3d_128x128");
  if (rank == 3 && tile == 64) return Impl<Op::wgrad, E, 3, 64, 128, 1>::kernel("wgrad_f16_3d_64x128");
  return nullptr;
}

}  // namespace convnd::cuda::sm90
