#include "cuda/runtime.h"

#ifndef CONVND_CUBLAS_MAJOR
#define CONVND_CUBLAS_MAJOR "13"
#endif

#include <dlfcn.h>

#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

namespace convnd::cuda {

namespace {

std::string short_path(const char* file) {
  std::string f(file);
  const size_t at = f.rfind("/src/");
  return at == std::string::npos ? f : f.substr(at + 1);
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_?";
}

// Blocks of one device, keyed by their rounded size. Never destroyed: freeing at process exit
// would race the CUDA runtime's own teardown.
struct Idle {
  void* p;
  cudaStream_t stream;  // the stream it was last used on (null: idle for every stream)
  cudaEvent_t event;    // recorded there at release (null when stream is)
};
struct Pool {
  std::mutex mu;
  std::multimap<int64_t, Idle> idle;
  int64_t idle_bytes = 0;
};

constexpr int kMaxDevices = 64;

Pool& pool_of(int device) {
  static Pool* pools = new Pool[kMaxDevices];
  return pools[device];
}

int64_t round_capacity(int64_t bytes) {
  const int64_t small = 512, large = int64_t(2) << 20;
  if (bytes <= (int64_t(1) << 20)) return (bytes + small - 1) / small * small;
  return (bytes + large - 1) / large * large;
}

void free_idle(Pool& pool) {
  for (auto& [cap, b] : pool.idle) {
    if (b.event) {
      cudaEventSynchronize(b.event);
      cudaEventDestroy(b.event);
    }
    cudaFree(b.p);
  }
  pool.idle.clear();
  pool.idle_bytes = 0;
}

}  // namespace

void check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  // Clear a non-sticky error so that later calls are not blamed for it.
  cudaGetLastError();
  const std::string msg = std::string("[cuda] ") + call + " failed: " + cudaGetErrorString(e) + " (" +
                          cudaGetErrorName(e) + ") at " + short_path(file) + ":" + std::to_string(line);
  throw Error(e == cudaErrorMemoryAllocation ? ErrorKind::out_of_memory : ErrorKind::backend, msg);
}

void check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorKind::out_of_memory : ErrorKind::backend,
              std::string("[cuda] ") + call + " failed: " + cublas_status_name(s) + " at " +
                  short_path(file) + ":" + std::to_string(line));
}

int current_device() {
  int d = 0;
  CONVND_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

const DeviceInfo& device_info(int ordinal) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<DeviceInfo>>* cache = new std::map<int, std::unique_ptr<DeviceInfo>>;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(ordinal);
  if (it != cache->end()) return *it->second;
  cudaDeviceProp prop{};
  CONVND_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  auto info = std::make_unique<DeviceInfo>();
  info->ordinal = ordinal;
  info->name = prop.name;
  info->major = prop.major;
  info->minor = prop.minor;
  info->sm_count = prop.multiProcessorCount;
  info->total_bytes = int64_t(prop.totalGlobalMem);
  return *cache->emplace(ordinal, std::move(info)).first->second;
}

namespace {

// This thread's capture mode made relaxed for a scope, so that cudaMalloc and cudaFree may run
// while a stream captures a graph (as PyTorch's allocator does for its graph pools).
struct RelaxedCapture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  RelaxedCapture() { cudaThreadExchangeStreamCaptureMode(&mode); }
  ~RelaxedCapture() { cudaThreadExchangeStreamCaptureMode(&mode); }
};

}  // namespace

void memory_info(int64_t* free_bytes, int64_t* total_bytes) {
  RelaxedCapture relaxed;  // a question, not work: allowed while another stream captures
  size_t f = 0, t = 0;
  CONVND_CUDA_CHECK(cudaMemGetInfo(&f, &t));
  *free_bytes = int64_t(f);
  *total_bytes = int64_t(t);
}

int64_t cached_bytes() {
  const int d = current_device();
  if (d < 0 || d >= kMaxDevices) return 0;
  Pool& pool = pool_of(d);
  std::lock_guard<std::mutex> lock(pool.mu);
  return pool.idle_bytes;
}

bool capturing(cudaStream_t stream) {
  if (!stream) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CONVND_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

DeviceBuffer::DeviceBuffer(int64_t bytes, const char* what, cudaStream_t stream, Lifetime lifetime) {
  stream_ = stream;
  if (bytes <= 0) return;
  device_ = current_device();
  if (device_ >= kMaxDevices)
    throw Error(ErrorKind::unsupported, "[cuda] device ordinals above 63 are not supported");
  const int64_t cap = round_capacity(bytes);
  // Under stream capture (a CUDA graph being recorded, e.g. torch.cuda.graph) the pool can be
  // neither grown (cudaMalloc is illegal in the default capture mode) nor drawn from (a block
  // last used on another stream is guarded by an event of uncaptured work, which a captured
  // stream may not wait for), nor given back to (the graph uses the memory whenever it is
  // replayed). Memory of the call becomes a node of the graph: cudaMallocAsync here,
  // cudaFreeAsync at release, both replayed with the graph. A tensor outlives the call and its
  // address must hold for every replay: a cudaMalloc of its own, freed when it goes.
  if (capturing(stream)) {
    void* p = nullptr;
    cudaError_t e;
    if (lifetime == Lifetime::call) {
      e = cudaMallocAsync(&p, size_t(cap), stream);
    } else {
      RelaxedCapture relaxed;
      e = cudaMalloc(&p, size_t(cap));
    }
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw Error(ErrorKind::out_of_memory, std::string("[cuda] cannot allocate ") + std::to_string(bytes) +
                                                " bytes for the " + what + " while a CUDA graph is captured");
    }
    CONVND_CUDA_CHECK(e);
    ptr_ = p;
    capacity_ = cap;
    bytes_ = bytes;
    captured_ = lifetime == Lifetime::call ? Captured::graph_node : Captured::own;
    return;
  }
  // Keep at most half of the device's memory idle (read here: release() must not throw).
  keep_limit_ = device_info(device_).total_bytes / 2;
  Pool& pool = pool_of(device_);
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    // Reuse an idle block at most a quarter larger than needed.
    auto it = pool.idle.lower_bound(cap);
    if (it != pool.idle.end() && it->first <= cap + cap / 4) {
      const Idle b = it->second;
      // Work enqueued on another stream before the block's release may still use it.
      if (b.event && stream && b.stream != stream) CONVND_CUDA_CHECK(cudaStreamWaitEvent(stream, b.event, 0));
      if (b.event && !stream) CONVND_CUDA_CHECK(cudaEventSynchronize(b.event));
      ptr_ = b.p;
      event_ = b.event;
      capacity_ = it->first;
      pool.idle_bytes -= it->first;
      pool.idle.erase(it);
      bytes_ = bytes;
      return;
    }
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size_t(cap));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    std::lock_guard<std::mutex> lock(pool.mu);
    free_idle(pool);
    e = cudaMalloc(&p, size_t(cap));
  }
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    int64_t f = 0, t = 0;
    memory_info(&f, &t);
    throw Error(ErrorKind::out_of_memory, std::string("[cuda] cannot allocate ") + std::to_string(bytes) +
                                              " bytes for the " + what + " on device " +
                                              std::to_string(device_) + " (" + std::to_string(f) + " of " +
                                              std::to_string(t) + " bytes free)");
  }
  CONVND_CUDA_CHECK(e);
  ptr_ = p;
  capacity_ = cap;
  bytes_ = bytes;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(o.ptr_), bytes_(o.bytes_), capacity_(o.capacity_), keep_limit_(o.keep_limit_), device_(o.device_),
      stream_(o.stream_), event_(o.event_), captured_(o.captured_) {
  o.ptr_ = nullptr;
  o.captured_ = Captured::no;
  o.event_ = nullptr;
  o.bytes_ = o.capacity_ = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    release();
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    capacity_ = o.capacity_;
    keep_limit_ = o.keep_limit_;
    device_ = o.device_;
    stream_ = o.stream_;
    event_ = o.event_;
    captured_ = o.captured_;
    o.ptr_ = nullptr;
    o.event_ = nullptr;
    o.captured_ = Captured::no;
    o.bytes_ = o.capacity_ = 0;
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  release();
}

void DeviceBuffer::release() {
  if (!ptr_) return;
  if (captured_ != Captured::no) {
    if (captured_ == Captured::graph_node) {  // freed in stream order, in the graph
      if (cudaFreeAsync(ptr_, stream_) != cudaSuccess) cudaGetLastError();
    } else {  // a tensor's own block; cudaFree waits for the device's work on it
      RelaxedCapture relaxed;
      if (cudaFree(ptr_) != cudaSuccess) cudaGetLastError();
    }
    ptr_ = nullptr;
    captured_ = Captured::no;
    return;
  }
  // Used on a stream without waiting: mark where that work ends (no error may escape here).
  cudaEvent_t ev = event_;
  if (stream_) {
    if (!ev && cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) ev = nullptr;
    if (ev && cudaEventRecord(ev, stream_) != cudaSuccess) {
      cudaGetLastError();
      cudaStreamSynchronize(stream_);  // no event: wait instead, so the block is idle for real
      cudaEventDestroy(ev);
      ev = nullptr;
    }
  } else if (ev) {
    cudaEventDestroy(ev);  // synchronous use: the block is idle for every stream
    ev = nullptr;
  }
  Pool& pool = pool_of(device_);
  std::lock_guard<std::mutex> lock(pool.mu);
  if (pool.idle_bytes + capacity_ <= keep_limit_) {
    pool.idle.emplace(capacity_, Idle{ptr_, ev ? stream_ : nullptr, ev});
    pool.idle_bytes += capacity_;
  } else {
    if (ev) {
      cudaEventSynchronize(ev);
      cudaEventDestroy(ev);
    }
    cudaFree(ptr_);
  }
  ptr_ = nullptr;
  event_ = nullptr;
}

std::mutex& cublas_mutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

const Cublas* cublas(std::string* why) {
  static std::string error;
  static const Cublas* api = []() -> const Cublas* {
    void* lib = nullptr;
    for (const char* name : {"libcublas.so." CONVND_CUBLAS_MAJOR, "libcublas.so"})
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (!lib) {
      const char* e = dlerror();
      error =
          std::string("cuBLAS (libcublas.so." CONVND_CUBLAS_MAJOR ") could not be loaded: ") + (e ? e : "");
      return nullptr;
    }
    static Cublas c;
    bool ok = true;
    auto get = [&](auto* fn, const char* sym) {
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(dlsym(lib, sym));
      if (!*fn) {
        ok = false;
        error = std::string("cuBLAS lacks ") + sym;
      }
    };
    get(&c.create, "cublasCreate_v2");
    get(&c.set_stream, "cublasSetStream_v2");
    get(&c.set_workspace, "cublasSetWorkspace_v2");
    get(&c.set_math_mode, "cublasSetMathMode");
    get(&c.gemm_ex, "cublasGemmEx");
    return ok ? &c : nullptr;
  }();
  if (!api && why) *why = error;
  return api;
}

cublasHandle_t cublas_handle() {
  const int d = current_device();
  static std::mutex mu;
  static std::map<int, cublasHandle_t>* handles = new std::map<int, cublasHandle_t>;
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles->find(d);
  if (it != handles->end()) return it->second;
  std::string why;
  const Cublas* api = cublas(&why);
  if (!api) throw Error(ErrorKind::backend, "[cuda] " + why);
  cublasHandle_t h = nullptr;
  CONVND_CUDA_CHECK(api->create(&h));
  CONVND_CUDA_CHECK(api->set_stream(h, 0));
  CONVND_CUDA_CHECK(api->set_workspace(h, nullptr, 0));
  CONVND_CUDA_CHECK(api->set_math_mode(
      h, cublasMath_t(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  handles->emplace(d, h);
  return h;
}

DeviceGuard::DeviceGuard(int device) {
  CONVND_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) CONVND_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (previous_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

}  // namespace convnd::cuda
