// The CUDA backend's runtime: checked calls (every failure names the call, file and line),
// per-device facts, a caching device allocator, and one cuBLAS handle per device.
// All work runs on the legacy default stream, so it is ordered with a caller's own work on
// that stream; execute() synchronizes before it returns.
#pragma once
#include <convnd/status.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace convnd::cuda {

/// Throws Error(backend) (Error(out_of_memory) for cudaErrorMemoryAllocation) naming the
/// failed call, its file and line.
void check(cudaError_t e, const char* call, const char* file, int line);
void check(cublasStatus_t s, const char* call, const char* file, int line);
#define CONVND_CUDA_CHECK(call) ::convnd::cuda::check((call), #call, __FILE__, __LINE__)

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0;
  int sm_count = 1;
  int64_t total_bytes = 0;
};

/// The device the caller's thread has current (cudaGetDevice).
int current_device();
/// Properties of a device, read once.
const DeviceInfo& device_info(int ordinal);
/// Free and total bytes of the current device (cudaMemGetInfo).
void memory_info(int64_t* free_bytes, int64_t* total_bytes);

/// Bytes the allocator holds for reuse on the current device (free to the backend).
int64_t cached_bytes();

/// Whether `stream` (non-null) is capturing a CUDA graph: then nothing may synchronise or
/// allocate outside the graph, and workspace comes from graph allocations (DeviceBuffer).
bool capturing(cudaStream_t stream);

/// How long a DeviceBuffer's memory is used: within the call that makes it (workspace,
/// staging), or beyond it as a tensor handed to the caller (an output). They differ only under
/// CUDA graph capture, where call memory is a node of the graph and tensor memory must keep its
/// address for every replay.
enum class Lifetime { call, tensor };

/// Device memory from the caching allocator (blocks are kept for reuse after release; when a
/// cudaMalloc fails the cache is emptied and the allocation tried once more).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  /// Throws Error(out_of_memory) naming `what` and the bytes when the device has no room.
  /// With a stream (non-null), the block may still be in use by work enqueued on it when the
  /// buffer is released: release() records an event there, and a later buffer that takes the
  /// block on another stream makes its stream wait for that event first. On a stream that is
  /// capturing a CUDA graph the pool is not used: call memory is a graph allocation
  /// (cudaMallocAsync, freed in stream order at release, inside the graph); tensor memory a
  /// cudaMalloc of its own, kept until release (the graph writes it on every replay).
  DeviceBuffer(int64_t bytes, const char* what, cudaStream_t stream = nullptr, Lifetime lifetime = Lifetime::call);
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  void* data() const { return ptr_; }
  int64_t bytes() const { return bytes_; }

 private:
  void release();
  void* ptr_ = nullptr;
  int64_t bytes_ = 0;       // requested
  int64_t capacity_ = 0;    // allocated (rounded)
  int64_t keep_limit_ = 0;  // idle bytes the device's pool may hold
  int device_ = -1;
  cudaStream_t stream_ = nullptr;  // the stream the block is used on (null: synchronous use)
  cudaEvent_t event_ = nullptr;    // recorded on stream_ at release (kept with the block)
  // Made while stream_ was capturing a graph (never pooled): a graph allocation (cudaMallocAsync,
  // freed with cudaFreeAsync) or a tensor's own cudaMalloc (freed with cudaFree).
  enum class Captured { no, graph_node, own } captured_ = Captured::no;
};

/// The current device's cuBLAS handle (created once, on the default stream, with no
/// workspace of its own so that results do not depend on memory left over; reductions in
/// the compute type, never in a narrower output type).
cublasHandle_t cublas_handle();
/// Held while a cuBLAS call is enqueued on a stream set on the shared handle (the handle's
/// stream is per handle, not per thread).
std::mutex& cublas_mutex();

/// cuBLAS is opened with dlopen on first use rather than linked: linking it costs every
/// process that loads convnd about 200 MB of resident memory at start-up (its relocations),
/// CPU-only users included. The few entry points the backend calls:
struct Cublas {
  decltype(&::cublasCreate_v2) create;
  decltype(&::cublasSetStream_v2) set_stream;
  decltype(&::cublasSetWorkspace_v2) set_workspace;
  decltype(&::cublasSetMathMode) set_math_mode;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*,
                            void*, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
};
/// The loaded library, or nullptr with *why set when it cannot be opened.
const Cublas* cublas(std::string* why = nullptr);

/// Makes `device` current for the lifetime of the guard and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace convnd::cuda
