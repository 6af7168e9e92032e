// Host memory for tensors and workspaces, and the byte count of a dense tensor: shared by
// Tensor (core), the CPU backend's allocator and the device allocation in the API layer.
#pragma once
#include <convnd/tensor.h>

#include <cstdint>
#include <memory>

namespace convnd {

/// Bytes of a dense tensor of this shape; Error(invalid) when a extent is negative or the
/// count (or the strides' span) overflows int64.
int64_t dense_bytes(DType dtype, const Shape& shape);

/// Uninitialised host memory, 64-byte aligned (2 MiB and huge-page backed from 32 MiB up, so
/// the first touch of a large output costs few page faults). Blocks of 128 KiB and more go back
/// to a bounded cache when released and serve later requests of up to their size (see
/// host_blocks.cpp). Error(out_of_memory) naming the bytes when it cannot be had.
std::shared_ptr<void> allocate_host(int64_t bytes);

/// Bytes held by released blocks waiting in the cache for reuse.
int64_t idle_host_bytes();
/// Frees the cache's idle blocks.
void release_idle_host_memory();

/// The machine's physical memory in bytes (16 GiB when the system will not say); read once.
int64_t physical_host_memory();

/// Host memory this process can still use, in bytes: MemAvailable from /proc/meminfo, lowered
/// by the room its cgroup's memory limit leaves (v1 or v2). Read fresh at every call (a few
/// microseconds of file reads).
int64_t available_host_memory();

/// Whether `bytes` more of host memory fit in what is available (the cache's idle blocks
/// included); *avail gets the figure read.
/// Requests under 64 MiB pass without reading anything: they cannot sink a machine, and the
/// file reads would be most of a tiny convolution's host time.
bool host_memory_fits(int64_t bytes, int64_t* avail);

}  // namespace convnd
