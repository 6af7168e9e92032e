// Helpers of the CUDA tests: whether a device is there (through the public API, so the tests
// compile as plain C++), running a problem with one CUDA algorithm forced, and device memory
// for the tests of device tensors.
#pragma once
#include <convnd/convnd.h>
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

#ifdef CONVND_WITH_CUDA
// The CUDA runtime calls the device-tensor tests need, declared here so that the tests
// need no CUDA headers (the library links the runtime; C linkage, enums passed as int).
extern "C" {
int cudaMalloc(void** ptr, size_t bytes);
int cudaFree(void* ptr);
int cudaMemcpy(void* dst, const void* src, size_t bytes, int kind);
int cudaMemset(void* ptr, int value, size_t bytes);
int cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
int cudaStreamCreate(void** stream);
int cudaStreamSynchronize(void* stream);
int cudaStreamDestroy(void* stream);
int cudaStreamBeginCapture(void* stream, int mode);  // mode 0: cudaStreamCaptureModeGlobal
int cudaStreamEndCapture(void* stream, void** graph);
int cudaGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long flags);
int cudaGraphLaunch(void* exec, void* stream);
int cudaGraphExecDestroy(void* exec);
int cudaGraphDestroy(void* graph);
}
#endif

namespace convnd::test {

/// "" when the CUDA backend can run here, else the planner's reason.
inline const std::string& cuda_unavailable() {
  static const std::string why = [] {
    ExecOptions opt;
    opt.backend = Backend::cuda;
    try {
      make_plan(parse_problem("in=8 c=1 o=1"), opt);
      return std::string();
    } catch (const Error& e) {
      return std::string(e.what());
    }
  }();
  return why;
}

#define CONVND_SKIP_WITHOUT_CUDA()                                              \
  do {                                                                          \
    if (!::convnd::test::cuda_unavailable().empty())                            \
      GTEST_SKIP() << "no CUDA device: " << ::convnd::test::cuda_unavailable(); \
  } while (0)

inline ExecOptions cuda_options(const std::string& algorithm = {}, int64_t budget = -1) {
  ExecOptions opt;
  opt.backend = Backend::cuda;
  opt.algorithm = algorithm;
  opt.budget = budget;
  return opt;
}

/// Runs c with the named CUDA algorithm forced (host tensors, staged); false when it declines.
inline bool run_cuda(const Case& c, const std::string& algo, Tensor* y, int64_t budget = -1) {
  const ExecOptions opt = cuda_options(algo, budget);
  Plan plan;
  try {
    plan = make_plan(c.problem, opt);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::unsupported) return false;
    throw;
  }
  EXPECT_EQ(plan.algorithm, algo);
  *y = Tensor::empty(c.problem.dtype, y_shape(c.shapes));
  fill(y->view(), std::nan(""));  // every element must be written
  execute(plan, c.x, c.w, *y, opt);
  return true;
}

#ifdef CONVND_WITH_CUDA
/// Device memory for a test (cudaMalloc), freed at scope exit.
class DeviceMemory {
 public:
  explicit DeviceMemory(int64_t bytes) {
    if (cudaMalloc(&ptr_, size_t(bytes)) != 0) ptr_ = nullptr;
  }
  ~DeviceMemory() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  void* get() const { return ptr_; }
  bool upload(const void* src, int64_t bytes) { return cudaMemcpy(ptr_, src, size_t(bytes), 1) == 0; }
  bool download(void* dst, int64_t bytes) const { return cudaMemcpy(dst, ptr_, size_t(bytes), 2) == 0; }

 private:
  void* ptr_ = nullptr;
};

/// Runs `plan` on copies of c's x and w placed on the device one element past an allocation's
/// start (so not 16-byte aligned), its output there too, and returns the output on the host
/// (an empty tensor, with a test failure, where device memory fails).
inline Tensor run_on_unaligned_device_tensors(const Case& c, const Plan& plan, const ExecOptions& opt) {
  const DType t = c.problem.dtype;
  const int64_t es = dtype_size(t);
  Tensor y = Tensor::empty(t, y_shape(c.shapes));
  DeviceMemory dx(c.x.nbytes() + es), dw(c.w.nbytes() + es), dy(y.nbytes() + es);
  if (!dx.get() || !dw.get() || !dy.get()) {
    ADD_FAILURE() << "cudaMalloc failed";
    return Tensor();
  }
  char* xs = static_cast<char*>(dx.get()) + es;
  char* ws = static_cast<char*>(dw.get()) + es;
  char* ys = static_cast<char*>(dy.get()) + es;
  // kind 1 host to device, 2 device to host.
  EXPECT_EQ(cudaMemcpy(xs, c.x.data(), size_t(c.x.nbytes()), 1), 0);
  EXPECT_EQ(cudaMemcpy(ws, c.w.data(), size_t(c.w.nbytes()), 1), 0);
  TensorView xv(xs, t, c.x.shape()), wv(ws, t, c.w.shape()), yv(ys, t, y.shape());
  xv.device = wv.device = yv.device = 0;
  execute(plan, xv, wv, yv, opt);
  EXPECT_EQ(cudaMemcpy(y.data(), ys, size_t(y.nbytes()), 2), 0);
  return y;
}
#endif

}  // namespace convnd::test
