// A kernel's opt-in to more than 48 KiB of dynamic shared memory, made once per device: the
// attribute stays set, and asking again on every launch cost about a microsecond of host time,
// a tiny call's budget. Used by the implicit GEMM's tensor-core kernels and the CUTLASS ones.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

namespace convnd::cuda {

/// Sets `kernel`'s largest dynamic shared memory to `bytes` on the current device, unless
/// `*done` (the caller's record for that kernel: a bit per device ordinal below 64) says it was
/// set there already. A failure is returned and not recorded.
inline cudaError_t opt_in_shared_memory(const void* kernel, int bytes, std::atomic<uint64_t>* done) {
  int device = 0;
  if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  const uint64_t bit = device < 64 ? uint64_t(1) << device : 0;
  if (bit && (done->load(std::memory_order_acquire) & bit)) return cudaSuccess;
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e == cudaSuccess) done->fetch_or(bit, std::memory_order_release);
  return e;
}

}  // namespace convnd::cuda
