// Input gradients (stride 1) of bf16 on CUTLASS's sm90 kernels (sm90_conv.cuh), 2-D and 3-D.
// A translation unit of its own because each instantiation costs about a minute of compile
// time: ninja runs them side by side.
#include "cuda/cutlass/sm90_conv.cuh"

namespace convnd::cuda::sm90 {

const Kernel* dgrad_bf16(int rank, int tile) {
  using E = cutlass::bfloat16_t;
  // The tile's N runs over the input channels: 64 wide for at most 64 of them.
  if (rank == 2 && tile == 128) return Impl<Op::dgrad, E, 2, 128, 128, 1>::kernel("dgrad_bf16_2d_128x128");
  if (rank == 2 && tile == 64) return Impl<Op::dgrad, E, 2, 128, 64, 2>::kernel("dgrad_bf16_2d_128x64");
  if (rank == 3 && tile == 128) return Impl<Op::dgrad, E, 3, 128, 128, 1>::kernel("dgrad_bf16_3d_128x128");
  if (rank == 3 && tile == 64) return Impl<Op::dgrad, E, 3, 128, 64, 2>::kernel("dgrad_bf16_3d_128x64");
  return nullptr;
}

}  // namespace convnd::cuda::sm90
