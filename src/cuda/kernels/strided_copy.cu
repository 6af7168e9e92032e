// Copies between a dense buffer and a strided view of device memory, so that algorithms only
// ever see dense tensors (as on the CPU, where execute() copies strided views once).
#include "elem.cuh"

namespace convnd::cuda {

namespace {

template <class U>
__global__ void __launch_bounds__(256)
    strided_copy_kernel(const U* __restrict__ src, U* __restrict__ dst, StridedLayout layout, int64_t total,
                        bool to_dense) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    int64_t r = e, off = 0;
    for (int d = layout.ndim - 1; d >= 0; --d) {
      off += (r % layout.shape[d]) * layout.strides[d];
      r /= layout.shape[d];
    }
    if (to_dense)
      dst[e] = src[off];
    else
      dst[off] = src[e];
  }
}

cudaError_t launch(const void* src, void* dst, const StridedLayout& l, int elem_bytes, bool to_dense,
                   cudaStream_t stream) {
  int64_t total = 1;
  for (int d = 0; d < l.ndim; ++d) total *= l.shape[d];
  if (total == 0) return cudaSuccess;
  const unsigned grid = grid_for(total, 256, 132 * 32);
  switch (elem_bytes) {
    case 2:
      strided_copy_kernel<uint16_t><<<grid, 256, 0, stream>>>(
          static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), l, total, to_dense);
      break;
    case 4:
      strided_copy_kernel<uint32_t><<<grid, 256, 0, stream>>>(
          static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), l, total, to_dense);
      break;
    case 8:
      strided_copy_kernel<uint64_t><<<grid, 256, 0, stream>>>(
          static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), l, total, to_dense);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_copy_from_strided(const void* src, const StridedLayout& src_layout, void* dst,
                                     int elem_bytes, cudaStream_t stream) {
  return launch(src, dst, src_layout, elem_bytes, true, stream);
}

cudaError_t launch_copy_to_strided(const void* src, void* dst, const StridedLayout& dst_layout,
                                   int elem_bytes, cudaStream_t stream) {
  return launch(src, dst, dst_layout, elem_bytes, false, stream);
}

}  // namespace convnd::cuda
