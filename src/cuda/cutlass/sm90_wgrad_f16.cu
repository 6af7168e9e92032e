// Weight gradients (float partial sums) of f16 on CUTLASS's sm90 kernels (sm90_conv.cuh), 2-D and 3-D.
// A translation unit of its own because each instantiation costs about a minute of compile
// time: ninja runs them side by side.
#include "cuda/cutlass/sm90_conv.cuh"

namespace convnd::cuda::sm90 {

const Kernel* wgrad_f16(int rank, int tile) {
  using E = cutlass::half_t;
  // M runs over the output channels (64 or 128 of them a tile), N over (C, S, R[, T]), K over
  // the samples' pixels.
  if (rank == 2 && tile == 128) return Impl<Op::wgrad, E, 2, 128, 128, 1>::kernel("wgrad_f16_2d_128x128");
  if (rank == 2 && tile == 64) return Impl<Op::wgrad, E, 2, 64, 128, 1>::kernel("wgrad_f16_2d_64x128");
  if (rank == 3 && tile == 128) return Impl<Op::wgrad, E, 3, 128, 128, 1>::kernel("wgrad_f16_3d_128x128");
  if (rank == 3 && tile == 64) return Impl<Op::wgrad, E, 3, 64, 128, 1>::kernel("wgrad_f16_3d_64x128");
  return nullptr;
}

}  // namespace convnd::cuda::sm90
