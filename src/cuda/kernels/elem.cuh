// Element types on the device: storage type, compute type (float for f32/f16/bf16, double for
// f64), conversions with round-to-nearest-even, and a dispatch from Elem to a template.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels.h"

namespace convnd::cuda {

template <class T>
struct Compute {
  using type = float;
};
template <>
struct Compute<double> {
  using type = double;
};
template <class T>
using compute_t = typename Compute<T>::type;

__device__ __forceinline__ float to_compute(float v) {
  return v;
}
__device__ __forceinline__ double to_compute(double v) {
  return v;
}
__device__ __forceinline__ float to_compute(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float to_compute(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <class T>
__device__ __forceinline__ T from_compute(compute_t<T> v);
template <>
__device__ __forceinline__ float from_compute<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ double from_compute<double>(double v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_compute<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_compute<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

/// Read-only load through the non-coherent cache.
template <class T>
__device__ __forceinline__ compute_t<T> load(const T* p) {
  return to_compute(__ldg(p));
}

template <class T>
struct Tag {
  using type = T;
};

/// Calls f(Tag<T>{}) with T the storage type of e (f is a generic lambda taking `auto tag`,
/// reading `using T = typename decltype(tag)::type;`).
template <class F>
inline cudaError_t dispatch_elem(Elem e, F&& f) {
  switch (e) {
    case Elem::f32:
      return f(Tag<float>{});
    case Elem::f16:
      return f(Tag<__half>{});
    case Elem::bf16:
      return f(Tag<__nv_bfloat16>{});
    case Elem::f64:
      return f(Tag<double>{});
  }
  return cudaErrorInvalidValue;
}

/// Grid size for a grid-stride loop over `work` items of `block` threads: enough blocks to fill
/// the device a few times over, never more than the work needs.
inline unsigned grid_for(int64_t work, int block, int64_t max_blocks = int64_t(1) << 20) {
  int64_t b = (work + block - 1) / block;
  if (b > max_blocks) b = max_blocks;
  if (b < 1) b = 1;
  return unsigned(b);
}

}  // namespace convnd::cuda
