// Forward convs of float32 as TF32 on CUTLASS's sm90 kernels (sm90_conv.cuh), 2-D and 3-D, for
// callers that allow TF32 (ExecOptions::allow_tf32): float tensors, products of 10-bit-mantissa
// operands, float sums. fprop only: wgmma reads TF32 operands K-major, and the gradients' are not.
// A translation unit of its own because each instantiation costs about a minute of compile
// time: ninja runs them side by side.
#include "cuda/cutlass/sm90_conv.cuh"

namespace convnd::cuda::sm90 {

const Kernel* fprop_tf32(int rank, int tile) {
  using E = float;
  // As the 16-bit kernels: 128x64 on a 2x1 cluster for at most 64 output channels.
  if (rank == 2 && tile == 128) return Impl<Op::fprop, E, 2, 128, 128, 1>::kernel("fprop_tf32_2d_128x128");
  if (rank == 2 && tile == 64) return Impl<Op::fprop, E, 2, 128, 64, 2>::kernel("fprop_tf32_2d_128x64");
  if (rank == 3 && tile == 128) return Impl<Op::fprop, E, 3, 128, 128, 1>::kernel("fprop_tf32_3d_128x128");
  if (rank == 3 && tile == 64) return Impl<Op::fprop, E, 3, 128, 64, 2>::kernel("fprop_tf32_3d_128x64");
  return nullptr;
}

}  // namespace convnd::cuda::sm90
