// kernel_for(): the compiled CUTLASS kernels by (operator, element, rank, tile, cluster), and the sum
// of the weight gradient's float partials.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/cutlass/sm90_conv.h"

namespace convnd::cuda::sm90 {

// One per translation unit (sm90_<op>_<elem>.cu).
const Kernel* fprop_bf16(int rank, int tile);
const Kernel* fprop_f16(int rank, int tile);
const Kernel* dgrad_bf16(int rank, int tile);
const Kernel* dgrad_f16(int rank, int tile);
const Kernel* wgrad_bf16(int rank, int tile, int cluster_n);
const Kernel* wgrad_f16(int rank, int tile, int cluster_n);
const Kernel* fprop_tf32(int rank, int tile);

const Kernel* kernel_for(Op op, Elem elem, int rank, int tile, int cluster_n) {
  if (op != Op::wgrad && cluster_n != 1) return nullptr;  // clusters along N: wgrad only
  if (elem == Elem::tf32) return op == Op::fprop ? fprop_tf32(rank, tile) : nullptr;
  const bool bf = elem == Elem::bf16;
  switch (op) {
    case Op::fprop: return bf ? fprop_bf16(rank, tile) : fprop_f16(rank, tile);
    case Op::dgrad: return bf ? dgrad_bf16(rank, tile) : dgrad_f16(rank, tile);
    case Op::wgrad: return bf ? wgrad_bf16(rank, tile, cluster_n) : wgrad_f16(rank, tile, cluster_n);
  }
  return nullptr;
}

namespace {

template <class T>
__device__ T from_float(float v);
template <>
__device__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// The partials are added in index order, one thread per element: the result does not depend
// on the launch shape.
template <class T>
__global__ void sum_partials(const float* __restrict__ src, int64_t parts, int64_t count, T* __restrict__ dst) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    float s = src[i];
    for (int64_t p = 1; p < parts; ++p) s += src[p * count + i];
    dst[i] = from_float<T>(s);
  }
}

}  // namespace

cudaError_t launch_sum_partials(const float* src, int64_t parts, int64_t count, void* dst, Elem elem,
                                cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  if (elem == Elem::tf32) return cudaErrorInvalidValue;  // no TF32 weight gradient (fprop only)
  constexpr int kThreads = 256;
  const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, 4096);
  if (elem == Elem::bf16)
    sum_partials<<<unsigned(blocks), kThreads, 0, stream>>>(src, parts, count, static_cast<__nv_bfloat16*>(dst));
  else
    sum_partials<<<unsigned(blocks), kThreads, 0, stream>>>(src, parts, count, static_cast<__half*>(dst));
  return cudaGetLastError();
}

}  // namespace convnd::cuda::sm90
