// The CUDA backend (engine/backend.h): its ordered algorithm list, availability, the device
// memory check, device memory, copies, and execute() with staging of host tensors.
#include "engine/backend.h"

#include <cstring>

#include "core/checked.h"
#include "cuda/algorithms.h"
#include "cuda/runtime.h"

namespace convnd {

namespace {

std::string with_problem(const std::string& msg, const Problem& p) {
  return msg.find("; problem: ") == std::string::npos ? msg + "; problem: " + to_string(p) : msg;
}

std::string device_count_problem() {
  static const std::string reason = [] {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return std::string("no usable CUDA driver or device (cudaGetDeviceCount: ") + cudaGetErrorString(e) +
             ")";
    }
    if (n == 0) return std::string("no CUDA device is visible");
    return std::string();
  }();
  return reason;
}

cuda::StridedLayout layout_of(const TensorView& t) {
  cuda::StridedLayout l{};
  l.ndim = t.ndim();
  for (int d = 0; d < t.ndim(); ++d) {
    l.shape[d] = t.shape[d];
    l.strides[d] = t.strides[d];
  }
  return l;
}

bool needs_staging(const TensorView& t) {
  return t.device < 0 || !t.is_contiguous();
}

// A dense device copy of an input view (host or strided device memory) in buf; returns the
// pointer the algorithm reads.
// Copies are enqueued on `stream`; from pageable host memory cudaMemcpyAsync returns once the
// source is staged, so a temporary dense copy may go out of scope.
const void* stage_input(const TensorView& t, cuda::DeviceBuffer* buf, const char* what, cudaStream_t stream) {
  if (!needs_staging(t)) return t.data;
  *buf = cuda::DeviceBuffer(t.nbytes(), what, stream);
  if (t.device >= 0) {
    CONVND_CUDA_CHECK(
        cuda::launch_copy_from_strided(t.data, layout_of(t), buf->data(), int(dtype_size(t.dtype)), stream));
  } else if (t.is_contiguous()) {
    CONVND_CUDA_CHECK(
        cudaMemcpyAsync(buf->data(), t.data, size_t(t.nbytes()), cudaMemcpyHostToDevice, stream));
  } else {
    Tensor dense = contiguous_copy(t);
    CONVND_CUDA_CHECK(
        cudaMemcpyAsync(buf->data(), dense.data(), size_t(t.nbytes()), cudaMemcpyHostToDevice, stream));
  }
  return buf->data();
}

// Writes the dense device result into the caller's view y (host or device, any strides).
// A host y is complete on return; a strided device y is written in the stream's order, and
// waited for only when `wait` (no caller's stream).
void unstage_output(const void* dense, const TensorView& y, cudaStream_t stream, bool wait) {
  if (y.device >= 0) {
    CONVND_CUDA_CHECK(
        cuda::launch_copy_to_strided(dense, y.data, layout_of(y), int(dtype_size(y.dtype)), stream));
    if (wait) CONVND_CUDA_CHECK(cudaStreamSynchronize(stream));
    return;
  }
  Tensor host;
  void* dst = y.data;
  if (!y.is_contiguous()) {
    host = Tensor::empty(y.dtype, y.shape);
    dst = host.data();
  }
  CONVND_CUDA_CHECK(cudaMemcpyAsync(dst, dense, size_t(y.nbytes()), cudaMemcpyDeviceToHost, stream));
  CONVND_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host.defined()) copy_from_dense(host.data(), y);
}

// ---- the entry points, wrapped by the CudaBackend class below ----------------------------

std::string cuda_unavailable_reason() {
  std::string why = device_count_problem();
  if (!why.empty()) return why;
  try {
    const cuda::DeviceInfo& d = cuda::device_info(cuda::current_device());
    if (d.major != 9 || d.minor != 0)
      return "device " + std::to_string(d.ordinal) + " (" + d.name + ") has compute capability " +
             std::to_string(d.major) + "." + std::to_string(d.minor) + "; this build has code for sm_90 only";
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

// At plan time the tensors' places are unknown: x, w and y may already be on the device (then
// they take no new memory) or be staged from the host. So the plan asks only what holds either
// way: the workspace fits in what is free, and the four together fit in the device at all.
// execute() checks the staging it will really do against the free memory, before allocating.
Status cuda_check_memory(const Plan& plan) {
  const Geometry& g = plan.geometry;
  const int64_t es = dtype_size(g.dtype);
  int64_t need = 0;
  const bool fits = checked_add(g.x_elems() * es, g.w_elems() * es, &need) &&
                    checked_add(need, g.y_elems() * es, &need) &&
                    checked_add(need, plan.workspace_bytes, &need);
  try {
    const cuda::DeviceInfo& d = cuda::device_info(cuda::current_device());
    const int64_t total = d.total_bytes;
    const std::string where = " bytes on cuda device " + std::to_string(d.ordinal) + " (" + d.name + ")";
    if (!fits || need > total)
      return Status(ErrorKind::out_of_memory, "[plan] input, weight, output and workspace need " +
                                                  (fits ? std::to_string(need) : "more than 2^63") + where +
                                                  ", which has " + std::to_string(total) + " bytes in all");
    // A workspace the allocator's idle blocks can hold needs no question to the driver
    // (cudaMemGetInfo costs microseconds, a tiny call's whole budget).
    const int64_t cached = cuda::cached_bytes();
    if (plan.workspace_bytes <= cached) return Status::Ok();
    int64_t free_bytes = 0, total_now = 0;
    cuda::memory_info(&free_bytes, &total_now);
    if (plan.workspace_bytes > free_bytes + cached)
      return Status(ErrorKind::out_of_memory, "[plan] the workspace needs " +
                                                  std::to_string(plan.workspace_bytes) + where +
                                                  ", which has " + std::to_string(free_bytes + cached) +
                                                  " bytes free of " + std::to_string(total));
  } catch (const Error& e) {
    return Status(e.kind(), e.what());
  }
  return Status::Ok();
}

void cuda_execute(const Plan& plan, const Algorithm& algorithm, const TensorView& x, const TensorView& w,
                  const TensorView& y, const ExecOptions& opt) {
  const Problem& p = plan.problem;
  const Geometry& g = plan.geometry;
  try {
    // Every device tensor must live on one device; host tensors are staged on it.
    int device = -1;
    for (const TensorView* t : {&x, &w, &y}) {
      if (t->device < 0) continue;
      if (device >= 0 && t->device != device)
        throw Error(ErrorKind::invalid, "[execute] tensors on cuda devices " + std::to_string(device) +
                                            " and " + std::to_string(t->device) +
                                            " cannot be used in one call");
      device = t->device;
    }
    const std::string why = cuda_unavailable_reason();
    if (!why.empty())
      throw Error(ErrorKind::unsupported, "[execute] the cuda backend is unavailable: " + why);
    if (device < 0) device = cuda::current_device();
    cuda::DeviceGuard guard(device);

    const cudaStream_t stream = static_cast<cudaStream_t>(opt.cuda_stream);
    // Host tensors are staged through host memory, which waits for the device; strided device
    // tensors are copied dense by a kernel on the stream, in its order (PyTorch's weight in its
    // own layout, say), which waits for nothing.
    bool host = false;
    int64_t staged = plan.workspace_bytes;
    for (const TensorView* t : {&x, &w, &y}) {
      if (needs_staging(*t)) staged += t->nbytes();
      host = host || t->device < 0;
    }
    if (cuda::capturing(stream)) {
      // A stream capturing a CUDA graph: the call is recorded, not run. Host staging would
      // wait for the device, which a capture forbids; the workspace and the dense copies of
      // strided device tensors are graph allocations (DeviceBuffer), which the graph's
      // instantiation and launch account for, not this device's free memory.
      if (host)
        throw Error(ErrorKind::invalid,
                    "[execute] a call captured in a CUDA graph needs every tensor in device memory "
                    "(host tensors are staged, which waits for the device)");
    } else {
      // Staging and workspace must fit before anything is allocated. As in cuda_check_memory:
      // what the idle blocks hold needs no cudaMemGetInfo.
      const int64_t cached = cuda::cached_bytes();
      int64_t free_bytes = 0, total = 0;
      if (staged > cached) cuda::memory_info(&free_bytes, &total);
      if (staged > free_bytes + cached)
        throw Error(ErrorKind::out_of_memory, "[execute] staging and workspace need " + std::to_string(staged) +
                                                  " bytes on cuda device " + std::to_string(device) +
                                                  ", which has " + std::to_string(free_bytes) + " bytes free");
    }

    // The direction's output (y, dx or dw) is written; the other two are read. Inputs that are
    // host or strided are staged dense on the device; so is an output that is.
    const int out = output_role(g.dir);
    const TensorView* given[3] = {&x, &w, &y};
    static const char* const names[3] = {"input x", "weight w", "output y"};
    // The caller's stream, if any. With every tensor on the device the run is only enqueued
    // there (no synchronisation: the caller orders it); with a host tensor it is waited for.
    const bool wait = stream == nullptr || host;
    cuda::DeviceBuffer bufs[3];
    void* dev[3];
    for (int r = 0; r < 3; ++r) {
      if (r == out) {
        dev[r] = given[r]->data;
        if (needs_staging(*given[r])) {
          bufs[r] = cuda::DeviceBuffer(given[r]->nbytes(), names[r], stream);
          dev[r] = bufs[r].data();
        }
      } else {
        dev[r] = const_cast<void*>(stage_input(*given[r], &bufs[r], names[r], stream));
      }
    }
    cuda::DeviceBuffer ws(plan.workspace_bytes, "workspace", stream);

    const DenseViews v5 = dense_views(g, dev[0], dev[1], dev[2], device);
    RunContext ctx{plan, g, v5.x, v5.w, v5.y, ws.data(), nullptr, &opt.progress, stream};
    const Status st = algorithm.run(ctx);
    if (!st.ok()) {
      cudaStreamSynchronize(stream);  // let enqueued work finish before the buffers go back
      throw Error(st.kind(), st.message());
    }
    CONVND_CUDA_CHECK(cudaGetLastError());
    if (bufs[out].data()) unstage_output(bufs[out].data(), *given[out], stream, wait);
    else if (wait) CONVND_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (const Error& e) {
    throw Error(e.kind(), with_problem(e.what(), p));
  }
}

std::shared_ptr<void> cuda_allocate(int64_t bytes, int device, cudaStream_t stream) {
  if (std::string why = cuda_unavailable_reason(); !why.empty())
    throw Error(ErrorKind::unsupported,
                "[tensor] cannot allocate on CUDA device " + std::to_string(device) + ": " + why);
  cuda::DeviceGuard guard(device);
  auto* buffer = new cuda::DeviceBuffer(bytes, "a tensor", stream, cuda::Lifetime::tensor);
  return std::shared_ptr<void>(buffer->data(), [buffer, device](void*) noexcept {
    try {
      cuda::DeviceGuard back(device);  // the allocator's pools are per device
      delete buffer;
    } catch (...) {
      // The driver is going away (process exit): the memory goes with it.
    }
  });
}

class CudaBackend final : public BackendImpl {
 public:
  Backend kind() const override { return Backend::cuda; }
  std::string unavailable_reason() const override { return cuda_unavailable_reason(); }
  // Most specialised first; the direct kernel last, so every valid forward problem has a plan.
  const std::vector<const Algorithm*>& algorithms() const override {
    static const std::vector<const Algorithm*> list = {
        &pointwise_gemm_cuda_algorithm(), &depthwise_direct_cuda_algorithm(), &transposed_gather_cuda_algorithm(),
        // CUTLASS's Hopper kernels (f16/bf16 dense convs, stride-1 input gradients, weight
        // gradients) before the implicit GEMM and the gradient adapters: on an H100 they ran
        // the bf16 3x3 layers at 0.56-0.94x cuDNN where the implicit GEMM ran 0.50-0.80x, and
        // the weight gradients 2.5-4.6x faster than weight_grad__cuda
        // (bench/results/grad-gpu-2026-12-07-h100.md). Pointwise input gradients stay with
        // data_grad__cuda's cuBLAS GEMM (cutlass_sm90__cuda steps aside unless named).
        &cutlass_sm90_cuda_algorithm(),
        // Grouped f16/bf16 convs of 8 to 32 output channels per group, several groups a block
        // (the implicit GEMM gives each group a 64-column tile).
        &grouped_gemm_cuda_algorithm(),
        &implicit_gemm_cuda_algorithm(), &polyphase_gemm_cuda_algorithm(), &direct_cuda_algorithm(),
        // The gradients: bwd_d as the dual forward conv (planned with the list above); bwd_w of
        // a stride-1 transposed conv through its dual (no inserted zeros), then any bwd_w.
        &data_grad_cuda_algorithm(), &weight_grad_dual_cuda_algorithm(), &weight_grad_cuda_algorithm(),
    };
    return list;
  }
  Isa resolve_isa(const ExecOptions&, DType) const override { return Isa::sm_90; }
  int current_device() const override { return cuda::current_device(); }
  // Whatever the caller allocates, the device must hold the tensors (staged when they are host
  // tensors) and the workspace; execute() checks the staging it really does.
  Status check_memory(const Plan& plan, Allocating) const override { return cuda_check_memory(plan); }
  std::shared_ptr<void> allocate(int64_t bytes, int device, void* stream) const override {
    return cuda_allocate(bytes, device, static_cast<cudaStream_t>(stream));
  }
  void copy(void* dst, int dst_device, const void* src, int src_device, int64_t bytes) const override {
    if (bytes <= 0) return;
    const cudaMemcpyKind kind = dst_device >= 0
                                    ? (src_device >= 0 ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                    : (src_device >= 0 ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    cuda::DeviceGuard guard(dst_device >= 0   ? dst_device
                            : src_device >= 0 ? src_device
                                              : cuda::current_device());
    CONVND_CUDA_CHECK(cudaMemcpy(dst, src, size_t(bytes), kind));
  }
  void synchronize(int device) const override {
    cuda::DeviceGuard guard(device >= 0 ? device : cuda::current_device());
    CONVND_CUDA_CHECK(cudaDeviceSynchronize());
  }
  void execute(const Plan& plan, const Algorithm& algorithm, const TensorView& x, const TensorView& w,
               const TensorView& y, const ExecOptions& opt) const override {
    cuda_execute(plan, algorithm, x, w, y, opt);
  }
};

}  // namespace

const BackendImpl& cuda_backend() {
  static const CudaBackend backend;
  return backend;
}

}  // namespace convnd
